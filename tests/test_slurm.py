"""The SLURM profile on a real single-node SLURM (tests/slurm_cluster.py), started once per session.

Every run goes through the shipped `workflow/profiles/slurm` unchanged, most with test-only
status-check intervals on the command line. The node has 12 CPUs, 24 GB and two stand-in GPUs
(gres on /dev/null and /dev/zero: SLURM grants them and sets CUDA_VISIBLE_DEVICES, but there is
no CUDA behind them). The study runs with `--config device=cpu`, asking for no GPU; with the
default `device: auto` the GPU pre-flight, granted a GPU torch cannot use, must fail once and no
GPU rule's job start (and past it, each GPU rule's job must stop at its own start).
Select these tests with `-m slurm`; they need root (to start the daemons) and Debian's
`slurm-wlm slurmdbd munge mariadb-server`, which the fixture installs when they are missing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from protolib.layout import Layout
from protolib.slurm import Node, Request, parse_sinfo, unsatisfiable
from tests.helpers import REPO, small_config, snakemake_command, write_config

PROFILE = REPO / "workflow" / "profiles" / "slurm"
TARGETS = ["table1", "tables", "fig2"]  # rule names (before --configfile, which takes several values)
# test-only: poll sacct every few seconds instead of the profile's cluster-friendly 40 s start
FAST = ["--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2"]
CI = os.environ.get("CI", "").lower() == "true"
# Generous: a run takes minutes on an idle 2-core machine, but each job starts three Pythons
# (sbatch's snakemake, srun's snakemake, the script) and a loaded machine slows them a lot.
RUN_TIMEOUT = 1800


def unavailable(reason: str):
    """Under CI=true a missing real prerequisite fails the test; elsewhere it skips it."""
    (pytest.fail if CI else pytest.skip)(reason)


def study_config() -> dict:
    """small_config, smaller: every rule still runs, but few jobs (SLURM overhead is per job)."""
    config = small_config(Path("results"))  # relative: the same config text in every working dir
    config.pop("device")  # comes from --config device=cpu, as a user on a CPU-only cluster would
    config["datasets"]["digits"]["candidates"] = 20
    config["scores"]["chunk_size"] = 32  # one score_chunk job per class
    config["selection"] = {
        "M": [1, 3],
        "methods": ["greedy", "evolutionary"],
        "evolutionary": {"population": 20, "generations": 5},
    }
    return config


# ----------------------------------------------------------------------------- the pre-check alone
def test_precheck_names_a_request_no_node_can_hold():
    nodes = parse_sinfo("main*|2|16000|(null)\ngpu|8|64000|gpu:a100:4(S:0-1)\n")
    assert nodes == [Node("main", True, 2, 16000, 0), Node("gpu", False, 8, 64000, 4)]
    fits = [Request("rule a", None, 2, 16000, 0), Request("rule b", "gpu", 8, 1000, 1)]
    assert unsatisfiable(fits, nodes) == []
    too_big = [
        Request("rule c", None, 4, 1000, 0),
        Request("rule d", None, 1, 1000, 1),
        Request("rule e", "x", 1, 1, 0),
    ]
    problems = unsatisfiable(too_big, nodes)
    assert len(problems) == 3
    assert problems[0].startswith("rule c: asks for 4 CPUs, 1000 MB memory, 0 GPUs in the default partition")
    assert "largest: 2 CPUs, 16000 MB, 0 GPUs" in problems[0]
    assert "no such partition" in problems[2]


# ----------------------------------------------------------------------------- the cluster
@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    from tests.slurm_cluster import ClusterError, SlurmCluster

    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        unavailable("snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]')")
    if os.geteuid() != 0:
        unavailable("a real SLURM needs root to start its daemons")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except ClusterError as err:
        unavailable(f"could not bring SLURM up: {err}")
    try:
        yield cluster
    finally:
        cluster.stop()


def profile_run(cluster, workdir: Path, *extra: str) -> list[str]:
    return snakemake_command(
        *TARGETS,
        "--profile",
        str(PROFILE),
        "--configfile",
        str(workdir / "config.yaml"),
        "--config",
        "device=cpu",
        *FAST,
        *extra,
        workdir=workdir,
    )


def run(cluster, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=timeout)


def submitted_ids(log: str) -> list[str]:
    return re.findall(r"has been submitted with SLURM jobid (\d+)", log)


def sacct(cluster, ids: list[str]) -> pd.DataFrame:
    fields = "JobID,Comment,State,ReqCPUS,ReqMem,ReqTRES,AllocTRES,Submit,Start,End"
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o", fields],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line]
    table = pd.DataFrame(rows, columns=fields.split(","))
    table["rule"] = table["Comment"].str.removeprefix("rule_").str.split("_wildcards_").str[0]
    return table


def overhead(jobs: pd.DataFrame, wall: float) -> str:
    """Wall time, and how much of it no job was running (submission, queueing, status polling)."""
    start, end = pd.to_datetime(jobs["Start"]), pd.to_datetime(jobs["End"])
    busy, last = 0.0, None
    for s, e in sorted(zip(start, end)):  # length of the union of the running intervals
        if last is None or s > last:
            busy, last = busy + (e - s).total_seconds(), e
        elif e > last:
            busy, last = busy + (e - last).total_seconds(), e
    idle = wall - busy
    return (
        f"{len(jobs)} SLURM jobs in {wall:.0f} s; a job ran {(end - start).dt.total_seconds().mean():.0f} s on "
        f"average; no job running for {idle:.0f} s = {idle / len(jobs):.1f} s per job"
    )


def read_tables(results: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(Layout(results).tables).iterdir())}


@pytest.fixture(scope="session")
def slurm_study(slurm, tmp_path_factory):
    """The study on SLURM, and the same study locally with --cores 2 (for comparison)."""
    work, local = tmp_path_factory.mktemp("slurm_study"), tmp_path_factory.mktemp("local_study")
    for d in (work, local):
        write_config(d / "config.yaml", study_config())
    local_cmd = snakemake_command(
        *TARGETS, "--cores", "2", "--configfile", str(local / "config.yaml"), "--config", "device=cpu", workdir=local
    )
    local_proc = subprocess.run(local_cmd, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert local_proc.returncode == 0, (local_proc.stdout + local_proc.stderr)[-3000:]
    t0 = time.monotonic()
    proc = run(slurm, profile_run(slurm, work), timeout=RUN_TIMEOUT)
    wall = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    jobs = sacct(slurm, submitted_ids(log))
    print(f"\n[slurm] {overhead(jobs, wall)}; load average {os.getloadavg()[0]:.1f} (2 cores)")
    return work, local, jobs


@pytest.mark.slurm
def test_study_runs_on_slurm_and_equals_the_local_run(slurm_study):
    work, local, jobs = slurm_study
    layout = Layout(work / "results")
    assert Path(layout.tables, "table1.csv").exists()
    assert list(Path(layout.figures).glob("fig2_*.png"))
    assert Path(layout.tables, "per_class_digits_knn.csv").exists()
    slurm_t1 = pd.read_csv(Path(layout.tables, "table1.csv"))
    local_t1 = pd.read_csv(Path(Layout(local / "results").tables, "table1.csv"))
    pd.testing.assert_frame_equal(slurm_t1, local_t1, check_exact=True)
    assert read_tables(work / "results") == read_tables(local / "results")

    # sacct: every submission of every rule (and group) COMPLETED, none asked for or held a GPU
    assert (jobs["State"] == "COMPLETED").all(), jobs[["JobID", "rule", "State"]]
    assert not jobs["AllocTRES"].str.contains("gres/gpu").any(), jobs[["rule", "AllocTRES"]]
    rules = set(jobs["rule"])
    expected = {"prepare", "features", "score_chunk", "evaluate_full", "evaluate_greedy", "evaluate_evolutionary"}
    assert expected <= rules, rules
    assert {r.split("_")[0] for r in rules} >= {"splits", "selection", "report"}, rules
    assert not jobs["ReqTRES"].str.contains("gpu").any(), jobs["ReqTRES"]


@pytest.mark.slurm
def test_group_jobs_ask_one_cpu(slurm_study):
    """Groups ask for no more than one rule's request times what runs side by side (profile
    `cores: 1`): the selection group of merge_scores + 2 select_* asks 1 CPU and 4 GB, not 3 and 12."""
    _, _, jobs = slurm_study
    groups = jobs[jobs["rule"].str.startswith(("selection", "splits", "report"))]
    assert len(groups) >= 4, jobs["rule"]
    assert (groups["ReqCPUS"].astype(int) == 1).all(), groups
    selection = groups[groups["rule"].str.startswith("selection")]
    assert set(selection["ReqMem"]) == {"4000M"}, selection


# ----------------------------------------------------------------------------- kill, resume, retry
def fail_one_running_job(cluster, after_id: int, prefix: str, stop: threading.Event, failed: list) -> None:
    """SIGKILL the processes of the first job of a rule starting with `prefix`, submitted after
    `after_id`, seen RUNNING: the job ends FAILED, as one killed by the kernel would. (Not
    `scancel`: plugin 2.8.0 reads sacct's "CANCELLED by <uid>" as still running and waits forever.)"""
    while not stop.is_set():
        out = subprocess.run(
            ["squeue", "-h", "-t", "R", "-o", "%i|%k"], env=cluster.env, capture_output=True, text=True
        ).stdout
        for line in out.splitlines():
            jobid, comment = line.split("|", 1)
            if int(jobid) > after_id and comment.startswith(f"rule_{prefix}"):
                pids = subprocess.run(
                    ["scontrol", "listpids", jobid], env=cluster.env, capture_output=True, text=True
                ).stdout.split("\n")[1:]
                for pid in {int(row.split()[0]) for row in pids if row.strip()}:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                failed.append(jobid)
                return
        time.sleep(0.3)


@pytest.fixture(scope="session")
def resumed_study(slurm, slurm_study):
    """The study killed mid-way (snakemake's PID, SIGKILL: no clean-up), then the resume commands
    of docs/cluster.md: `--unlock` and the same command again; in that second run one running
    evaluate job is killed (it ends FAILED), which the profile's `retries` must absorb."""
    work = slurm_study[0].parent / "resumed_study"
    work.mkdir()
    write_config(work / "config.yaml", study_config())
    cmd = profile_run(slurm, work)
    first = subprocess.Popen(cmd, cwd=REPO, env=slurm.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    subsets = work / "results" / "subsets"
    end = time.monotonic() + RUN_TIMEOUT
    while not (subsets.exists() and any(subsets.rglob("*.json"))):  # a selection group has finished
        assert first.poll() is None and time.monotonic() < end, "the first run ended before it could be killed"
        time.sleep(0.5)
    os.kill(first.pid, signal.SIGKILL)
    first_log = first.communicate()[0]
    assert not Path(Layout(work / "results").tables, "table1.csv").exists(), "killed too late: nothing left to resume"

    locked = run(slurm, cmd, timeout=300)
    # the killed run's lock: protolib.run_lock says another run holds the folder, and how to release it
    assert locked.returncode != 0, locked.stderr[-2000:]
    assert "another snakemake run holds the results folder" in locked.stderr, locked.stderr[-2000:]
    assert "snakemake --unlock" in locked.stderr, locked.stderr[-2000:]
    unlock = run(slurm, [*cmd, "--unlock"], timeout=300)
    assert unlock.returncode == 0, unlock.stderr[-2000:]

    before = max(int(i) for i in submitted_ids(first_log))
    stop, failed = threading.Event(), []
    watcher = threading.Thread(target=fail_one_running_job, args=(slurm, before, "evaluate_", stop, failed))
    watcher.start()
    try:
        resumed = run(slurm, cmd, timeout=RUN_TIMEOUT)
    finally:
        stop.set()
        watcher.join()
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-5000:]
    return work, log, failed, sacct(slurm, submitted_ids(log))


@pytest.mark.slurm
def test_killed_study_resumes_to_identical_tables(resumed_study, slurm_study):
    work, log, _, _ = resumed_study
    assert read_tables(work / "results") == read_tables(slurm_study[0] / "results")
    assert "prepare" not in set(re.findall(r"rule (\w+):", log)), "resume redid finished work"


@pytest.mark.slurm
def test_failed_job_is_retried(resumed_study, slurm):
    _, log, failed, jobs = resumed_study
    assert len(failed) == 1, "no evaluate job was seen running to kill"
    by_id = jobs.set_index("JobID")
    assert by_id.loc[failed[0], "State"] == "FAILED"
    comment = by_id.loc[failed[0], "Comment"]
    again = jobs[(jobs["Comment"] == comment) & (jobs["JobID"] != failed[0])]
    assert list(again["State"]) == ["COMPLETED"], jobs[["JobID", "Comment", "State"]]
    assert "Trying to restart job" in log


# ----------------------------------------------------------------------------- unsatisfiable
@pytest.mark.slurm
def test_request_no_node_can_hold_stops_before_submission(slurm, tmp_path):
    """32 CPUs on the 12-CPU node: SLURM would keep the job PENDING (PartitionConfig) forever; the
    Snakefile's onstart pre-check (protolib.slurm) stops the run first, naming rule and request."""
    write_config(tmp_path / "config.yaml", study_config())
    cmd = profile_run(slurm, tmp_path, "--set-resources", "score_chunk:cpus_per_task=32")
    proc = run(slurm, cmd, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-3000:]
    assert "rule score_chunk: asks for 32 CPUs, 8000 MB memory, 0 GPUs in the default partition" in log, log[-3000:]
    assert "largest: 12 CPUs, 24000 MB, 2 GPUs" in log
    assert not submitted_ids(log), "jobs were submitted before the check"


# ----------------------------------------------------------------------------- GPUs
GPU_RULES = {"device_check", "features", "score_chunk", "evaluate_full", "evaluate_greedy", "evaluate_evolutionary"}


def gpu_study_config() -> dict:
    """study_config with one class and an image detector (PatchCore): its score_chunk and
    evaluate_full jobs need no feature cache, so they are ready beside the feature cache's
    `features`: three GPU jobs per run for the two GPUs."""
    config = study_config()
    config["datasets"]["digits"]["classes"] = [3]
    config["models"] = {
        "patchcore": {"detector": "patchcore", "backbone": "wide_resnet50_2", "weights": "none", "image_size": 32}
    }
    config["runs"] = [{"dataset": "digits", "model": "patchcore"}]
    return config


def most_at_once(jobs: pd.DataFrame) -> int:
    """The largest number of these jobs running at one time (sacct's Start/End; a job ending in
    the second another starts is not counted with it)."""
    events = sorted([(t, 1) for t in pd.to_datetime(jobs["Start"])] + [(t, -1) for t in pd.to_datetime(jobs["End"])])
    running = most = 0
    for _, step in events:  # ends sort before starts at the same time
        running += step
        most = max(most, running)
    return most


@pytest.fixture(scope="session")
def gpu_runs(slurm, tmp_path_factory) -> dict:
    """Two studies, one after the other, on the node with two stand-in GPUs (granted, no CUDA
    behind them), the default `device: auto`:

    - "shipped": the shipped profile as it is, its status-check intervals included (no test-only
      flags): the GPU pre-flight `device_check` must fail once and no GPU rule's job start;
    - "bypassed": `--config gpu_model=tesla`, with the pre-flight's record written beforehand
      (as if it had passed; test-only, with FAST polling and `--retries 0`): each GPU rule's job
      then holds a typed GPU and must stop at its own start, never more than two at once.
    """
    out = {}
    for name in ("shipped", "bypassed"):  # the shipped run alone: its wall time is the one users see
        work = tmp_path_factory.mktemp(f"gpu_run_{name}")
        write_config(work / "config.yaml", gpu_study_config())
        extra: list[str] = []
        if name == "bypassed":
            (work / "results").mkdir()
            (work / "results" / "device_check.json").write_text("{}\n")
            extra = ["--config", "gpu_model=tesla", *FAST, "--retries", "0"]
        cmd = snakemake_command(
            *TARGETS, "--profile", str(PROFILE), "--configfile", str(work / "config.yaml"), *extra, workdir=work
        )
        t0 = time.monotonic()
        proc = subprocess.run(
            cmd,
            cwd=REPO,
            env=slurm.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=RUN_TIMEOUT,
        )
        wall = time.monotonic() - t0
        out[name] = (work, proc.returncode, proc.stdout, sacct(slurm, submitted_ids(proc.stdout)), wall)
    check = out["shipped"][3].iloc[0]
    print(
        f"\n[slurm] device: auto without CUDA, shipped profile: ended after {out['shipped'][4]:.0f} s "
        f"(its one job: submitted {check['Submit']}, ran {check['Start']} to {check['End']}); "
        f"load average {os.getloadavg()[0]:.1f} (2 cores)"
    )
    return out


@pytest.mark.slurm
def test_gpu_preflight_fails_once_and_no_gpu_rule_starts(gpu_runs):
    """The shipped profile retries failed jobs twice with more memory; the pre-flight, which asks
    SLURM for a GPU as the GPU rules do, is not retried, and no other job is submitted (the GPU
    rules and `prepare`, the study's first job, wait for it)."""
    work, returncode, log, jobs, wall = gpu_runs["shipped"]
    assert returncode == 1, log[-3000:]
    check = jobs[jobs["rule"] == "device_check"]
    assert len(check) == 1 and check["State"].iloc[0] == "FAILED", jobs[["rule", "State"]]  # one attempt
    assert check["AllocTRES"].str.contains(r"(?:^|,)gres/gpu=1(?:,|$)").all(), check["AllocTRES"]
    assert list(jobs["rule"]) == ["device_check"], jobs[["rule", "State"]]
    assert len(re.findall(r"submitted with SLURM jobid \d+ \(log: \S+/rule_device_check/", log)) == 1, log[-3000:]
    assert "Error in rule device_check" in log, log[-3000:]
    # the CUDA message, in the job's log and on the terminal (the profile's show-failed-logs)
    text = (work / "results" / "logs" / "device_check.log").read_text()
    for where in (text, log):
        assert "device: auto with a GPU granted (CUDA_VISIBLE_DEVICES=" in where, where[-3000:]
        assert "torch cannot use a CUDA GPU here" in where and "--config device=cpu" in where
    assert "on device cpu" not in text, text  # nothing ran on the CPU instead
    results = work / "results"
    assert not [p for d in ("features", "scores", "eval") for p in (results / d).rglob("*.*")]
    assert not (results / "device_check.json").exists()
    # without the pre-flight each GPU job was tried three times (retries: 2), the tries one
    # after the other, each waiting for status polls: many minutes. A generous bound only.
    assert wall < 600, wall


@pytest.mark.slurm
def test_gpu_jobs_hold_one_gpu_cpu_jobs_none_and_two_run_at_once(gpu_runs):
    all_gpu = []
    for name, (_, _, _, jobs, _) in gpu_runs.items():
        gpu = jobs[jobs["rule"].isin(GPU_RULES)]
        cpu = jobs[~jobs["rule"].isin(GPU_RULES)]
        bypassed = name == "bypassed"
        assert set(gpu["rule"]) == ({"features", "score_chunk", "evaluate_full"} if bypassed else {"device_check"})
        assert {r.split("_")[0] for r in cpu["rule"]} == ({"prepare", "splits"} if bypassed else set()), jobs
        assert gpu["AllocTRES"].str.contains(r"(?:^|,)gres/gpu=1(?:,|$)").all(), gpu[["rule", "AllocTRES"]]
        assert not cpu["AllocTRES"].str.contains("gres/gpu").any(), cpu[["rule", "AllocTRES"]]
        assert not cpu["ReqTRES"].str.contains("gres/gpu").any(), cpu[["rule", "ReqTRES"]]
        # gpu_model reaches the GPU jobs' request (--gpus=tesla:1), and only theirs
        typed = gpu["ReqTRES"].str.contains("gres/gpu:tesla=1")
        assert typed.all() if bypassed else not typed.any(), (name, gpu[["rule", "ReqTRES"]])
        assert (cpu["State"] == "COMPLETED").all(), cpu[["rule", "State"]]
        all_gpu.append(gpu)
    gpu = pd.concat(all_gpu)
    assert len(gpu) == 4  # more GPU jobs than GPUs ...
    assert most_at_once(gpu) <= 2, gpu[["rule", "Start", "End"]]  # ... but never more than two at once


@pytest.mark.slurm
def test_auto_on_a_gpu_without_cuda_stops_at_the_job_start_not_on_the_cpu(gpu_runs):
    """Past the pre-flight, each GPU rule's job checks its own GPU at its start."""
    work, returncode, log, jobs, _ = gpu_runs["bypassed"]
    assert returncode == 1, log[-3000:]
    assert "Error in rule score_chunk" in log and "Error in rule evaluate_full" in log, log[-3000:]
    gpu = jobs[jobs["rule"].isin(GPU_RULES)]
    assert (gpu["State"] == "FAILED").all(), gpu[["rule", "State"]]
    results = work / "results"
    computed = [p for d in ("features", "scores", "eval") for p in (results / d).rglob("*.*")]
    assert not computed, computed
    logs = [
        p
        for rule in ("features", "score_chunk", "evaluate_full")
        for p in Path(Layout(results).logs, rule).rglob("*.log")
    ]
    assert len(logs) == 3, logs
    for path in logs:
        text = path.read_text()
        assert "device: auto with a GPU granted (CUDA_VISIBLE_DEVICES=" in text, text[-2000:]
        assert "torch cannot use a CUDA GPU here" in text and "driver:" in text and "--config device=cpu" in text
        assert "on device cpu" not in text, text[-2000:]  # nothing ran on the CPU instead
