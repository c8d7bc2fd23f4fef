"""The SLURM profile on a real single-node SLURM (tests/slurm_cluster.py), started once per session.

Every run goes through the shipped `workflow/profiles/slurm` unchanged, with `--config
device=cpu` (the node has no GPU) and test-only status-check intervals on the command line.
The node has 2 CPUs and 16 GB, so a group job that asks for more would never start.
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

from protolib.slurm import Node, Request, parse_sinfo, unsatisfiable
from tests.helpers import REPO, small_config, snakemake_command, write_config

PROFILE = REPO / "workflow" / "profiles" / "slurm"
TARGETS = ["table1", "tables", "fig2"]  # rule names (before --configfile, which takes several values)
# test-only: poll sacct every few seconds instead of the profile's cluster-friendly 40 s start
FAST = ["--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2"]
CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str):
    """Under CI=true a missing real prerequisite fails the test; elsewhere it skips it."""
    (pytest.fail if CI else pytest.skip)(reason)


def study_config() -> dict:
    """small_config, smaller: every rule still runs, but few jobs (SLURM overhead is per job)."""
    config = small_config(Path("results"))  # relative: the same config text in every working dir
    config.pop("device")  # comes from --config device=cpu, as a user on a CPU-only cluster would
    config["datasets"]["digits"]["candidates"] = 20
    config["selection"] = {
        "M": [1, 3],
        "methods": ["greedy", "evolutionary", "random"],
        "random": {"repeats": 2},
        "evolutionary": {"population": 20, "generations": 5},
    }
    return config


# ----------------------------------------------------------------------------- the pre-check alone
def test_precheck_names_a_request_no_node_can_hold():
    nodes = parse_sinfo("main*|2|16000|(null)\ngpu|8|64000|gpu:a100:4(S:0-1)\n")
    assert nodes == [Node("main", True, 2, 16000, 0), Node("gpu", False, 8, 64000, 4)]
    fits = [Request("rule a", None, 2, 16000, 0), Request("rule b", "gpu", 8, 1000, 1)]
    assert unsatisfiable(fits, nodes) == []
    too_big = [Request("rule c", None, 4, 1000, 0), Request("rule d", None, 1, 1000, 1), Request("rule e", "x", 1, 1, 0)]
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
    return snakemake_command(*TARGETS, "--profile", str(PROFILE), "--configfile", str(workdir / "config.yaml"),
                             "--config", "device=cpu", *FAST, *extra, workdir=workdir)


def run(cluster, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=timeout)


def submitted_ids(log: str) -> list[str]:
    return re.findall(r"has been submitted with SLURM jobid (\d+)", log)


def sacct(cluster, ids: list[str]) -> pd.DataFrame:
    fields = "JobID,Comment,State,ReqCPUS,ReqMem,ReqTRES,Submit,Start,End"
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o", fields],
                         env=cluster.env, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line]
    table = pd.DataFrame(rows, columns=fields.split(","))
    table["rule"] = table["Comment"].str.removeprefix("rule_").str.split("_wildcards_").str[0]
    return table


def read_tables(results: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((results / "tables").iterdir())}


@pytest.fixture(scope="session")
def slurm_study(slurm, tmp_path_factory):
    """The study on SLURM, and at the same time locally with --cores 2 (for comparison)."""
    work, local = tmp_path_factory.mktemp("slurm_study"), tmp_path_factory.mktemp("local_study")
    for d in (work, local):
        write_config(d / "config.yaml", study_config())
    local_cmd = snakemake_command(*TARGETS, "--cores", "2", "--configfile", str(local / "config.yaml"),
                                  "--config", "device=cpu", workdir=local)
    t0 = time.monotonic()
    local_proc = subprocess.Popen(local_cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    local_log = local_proc.communicate(timeout=600)[0]
    local_wall = time.monotonic() - t0
    assert local_proc.returncode == 0, local_log[-3000:]
    t0 = time.monotonic()
    proc = run(slurm, profile_run(slurm, work), timeout=600)
    wall = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    jobs = sacct(slurm, submitted_ids(log))
    wait = (pd.to_datetime(jobs["Start"]) - pd.to_datetime(jobs["Submit"])).dt.total_seconds()
    print(f"\n[slurm] study: {wall:.0f} s on SLURM ({len(jobs)} jobs, mean queue wait {wait.mean():.1f} s), "
          f"{local_wall:.0f} s locally with --cores 2: overhead {(wall - local_wall) / len(jobs):.1f} s per job; "
          f"load average {os.getloadavg()[0]:.1f}")
    return work, local, jobs


@pytest.mark.slurm
def test_study_runs_on_slurm_and_equals_the_local_run(slurm_study):
    work, local, jobs = slurm_study
    results = work / "results"
    assert (results / "tables" / "table1.csv").exists()
    assert list((results / "figures").glob("fig2_*.png"))
    assert any(p.name.startswith("table_") or "class" in p.name for p in (results / "tables").iterdir())
    slurm_t1 = pd.read_csv(results / "tables" / "table1.csv")
    local_t1 = pd.read_csv(local / "results" / "tables" / "table1.csv")
    pd.testing.assert_frame_equal(slurm_t1, local_t1, check_exact=True)
    assert read_tables(results) == read_tables(local / "results")

    # sacct: every submission of every rule (and group) COMPLETED, none asked for a GPU
    assert (jobs["State"] == "COMPLETED").all(), jobs[["JobID", "rule", "State"]]
    rules = set(jobs["rule"])
    expected = {"prepare", "features", "score_chunk", "evaluate_full", "evaluate_greedy", "evaluate_random"}
    assert expected <= rules, rules
    assert {r.split("_")[0] for r in rules} >= {"splits", "selection", "report"}, rules
    assert not jobs["ReqTRES"].str.contains("gpu").any(), jobs["ReqTRES"]


@pytest.mark.slurm
def test_group_jobs_fit_a_2_cpu_node(slurm_study):
    """Groups ask for no more than one rule's request times what runs side by side (profile
    `cores: 1`): the selection group of merge_scores + 3 select_* asks 1 CPU and 4 GB, not 4 and 16."""
    _, _, jobs = slurm_study
    groups = jobs[jobs["rule"].str.startswith(("selection", "splits", "report"))]
    assert len(groups) >= 4, jobs["rule"]
    assert (groups["ReqCPUS"].astype(int) == 1).all(), groups
    selection = groups[groups["rule"].str.startswith("selection")]
    assert set(selection["ReqMem"]) == {"4000M"}, selection


# ----------------------------------------------------------------------------- kill, resume, retry
def cancel_one_running_job(cluster, after_id: int, prefix: str, stop: threading.Event, cancelled: list) -> None:
    """scancel the first job of a rule starting with `prefix` submitted after `after_id` seen RUNNING."""
    while not stop.is_set():
        out = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i|%k"], env=cluster.env,
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            jobid, comment = line.split("|", 1)
            if int(jobid) > after_id and comment.startswith(f"rule_{prefix}"):
                subprocess.run(["scancel", jobid], env=cluster.env, check=True)
                cancelled.append(jobid)
                return
        time.sleep(0.3)


@pytest.fixture(scope="session")
def resumed_study(slurm, slurm_study):
    """The study killed mid-way (snakemake's PID, SIGKILL: no clean-up), then the resume commands
    of docs/cluster.md: `--unlock` and the same command again; in that second run one running
    evaluate job is cancelled with scancel, which the profile's `retries` must absorb."""
    work = slurm_study[0].parent / "resumed_study"
    work.mkdir()
    write_config(work / "config.yaml", study_config())
    cmd = profile_run(slurm, work)
    first = subprocess.Popen(cmd, cwd=REPO, env=slurm.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    subsets = work / "results" / "subsets"
    end = time.monotonic() + 400
    while not (subsets.exists() and any(subsets.rglob("*.json"))):  # a selection group has finished
        assert first.poll() is None and time.monotonic() < end, "the first run ended before it could be killed"
        time.sleep(0.5)
    os.kill(first.pid, signal.SIGKILL)
    first_log = first.communicate()[0]
    assert not (work / "results" / "tables" / "table1.csv").exists(), "killed too late: nothing left to resume"

    locked = run(slurm, cmd, timeout=120)
    assert locked.returncode != 0 and "locked" in locked.stderr.lower(), locked.stderr[-2000:]
    unlock = run(slurm, [*cmd, "--unlock"], timeout=120)
    assert unlock.returncode == 0, unlock.stderr[-2000:]

    before = max(int(i) for i in submitted_ids(first_log))
    stop, cancelled = threading.Event(), []
    watcher = threading.Thread(target=cancel_one_running_job, args=(slurm, before, "evaluate_", stop, cancelled))
    watcher.start()
    try:
        resumed = run(slurm, cmd, timeout=600)
    finally:
        stop.set()
        watcher.join()
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-5000:]
    return work, log, cancelled, sacct(slurm, submitted_ids(log))


@pytest.mark.slurm
def test_killed_study_resumes_to_identical_tables(resumed_study, slurm_study):
    work, log, _, _ = resumed_study
    assert read_tables(work / "results") == read_tables(slurm_study[0] / "results")
    assert "prepare" not in set(re.findall(r"rule (\w+):", log)), "resume redid finished work"


@pytest.mark.slurm
def test_cancelled_job_is_retried(resumed_study, slurm):
    _, log, cancelled, jobs = resumed_study
    assert len(cancelled) == 1, "no evaluate job was seen running to cancel"
    by_id = jobs.set_index("JobID")
    assert by_id.loc[cancelled[0], "State"].startswith("CANCELLED")
    comment = by_id.loc[cancelled[0], "Comment"]
    again = jobs[(jobs["Comment"] == comment) & (jobs["JobID"] != cancelled[0])]
    assert list(again["State"]) == ["COMPLETED"], jobs[["JobID", "Comment", "State"]]
    assert "Trying to restart job" in log


# ----------------------------------------------------------------------------- unsatisfiable
@pytest.mark.slurm
def test_request_no_node_can_hold_stops_before_submission(slurm, tmp_path):
    """4 CPUs on the 2-CPU node: SLURM would keep the job PENDING (PartitionConfig) forever; the
    Snakefile's onstart pre-check (protolib.slurm) stops the run first, naming rule and request."""
    write_config(tmp_path / "config.yaml", study_config())
    cmd = profile_run(slurm, tmp_path, "--set-resources", "score_chunk:cpus_per_task=4")
    proc = run(slurm, cmd, timeout=180)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-3000:]
    assert "rule score_chunk: asks for 4 CPUs, 8000 MB memory, 0 GPUs in the default partition" in log, log[-3000:]
    assert "largest: 2 CPUs, 16000 MB" in log
    assert not submitted_ids(log), "jobs were submitted before the check"
