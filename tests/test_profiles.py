"""The Snakemake profiles (workflow/profiles/{local,slurm}): they parse, they plan the default
study, and on SLURM the GPU rules are submitted with a GPU request and the CPU rules without.

The SLURM run uses stand-in sbatch/sacct/... scripts that only log their arguments, so no job
really runs: the test checks what would have been submitted. Every run works in tmp_path
(--directory), so nothing is written to the repository.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from protolib.layout import Layout
from protolib.models.backbones import feature_key

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "workflow" / "profiles"
METHODS = ["greedy", "evolutionary", "gmm", "random", "manual"]
GPU_RULES = {"device_check", "features", "score_chunk", "evaluate_full", *(f"evaluate_{m}" for m in METHODS)}
CPU_RULES = {"prepare", "split", "merge_scores", *(f"select_{m}" for m in METHODS)}
CPU_RULES |= {"evaluation_table", "table1", "tables", "fig2"}

needs_slurm_plugin = pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="snakemake-executor-plugin-slurm is not installed",
)


def load(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def clean_env(extra_path: Path | None = None) -> dict[str, str]:
    """The environment with the stand-in SLURM commands first on PATH (they shadow a real SLURM's,
    which may be installed: the real-SLURM tests need it), no SLURM_* variables, no user profile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAKEMAKE_PROFILE", "SLURM_"))}
    env["PATH"] = os.pathsep.join(([str(extra_path)] if extra_path else []) + [env.get("PATH", "")])
    return env


def snakemake(workdir: Path, *args: str, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def planned_resources(log: str) -> dict[str, list[dict[str, str]]]:
    """rule -> the `resources:` of each of its jobs in a dry run's listing."""
    out: dict[str, list[dict[str, str]]] = {}
    for m in re.finditer(r"^\s*rule (\w+):\n(?:\s+\w+:.*\n)*?\s+resources: (.*)$", log, re.M):
        out.setdefault(m.group(1), []).append(dict(kv.split("=", 1) for kv in m.group(2).split(", ")))
    return out


def planned_inputs(log: str) -> dict[str, list[str]]:
    """rule -> the `input:` line of each of its jobs in a dry run's listing."""
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"^\s*rule (\w+):\n((?:\s+\w+:.*\n)*)", log, re.M):
        line = re.search(r"^\s+input: (.*)$", m.group(2), re.M)
        out.setdefault(m.group(1), []).append(line.group(1) if line else "")
    return out


# ----------------------------------------------------------------------------- the YAML itself
@pytest.mark.parametrize("name", ["local", "slurm"])
def test_profile_names_no_gpu_rule(name):
    """The GPU need is declared on the rules (resources: **gpu_resources()), so a profile lists
    no GPU rule: a new evaluate_<method> or transfer_<name> rule gets its GPU without an edit.
    No GPU setting at all: the slurm plugin would give a default `gpu_model` to every job."""
    prof = load(name)
    assert prof["scheduler"] == "greedy"
    assert not prof.get("use-conda") and prof.get("software-deployment-method") in (None, [], "")
    for rule, values in prof.get("set-resources", {}).items():
        assert not any(k.startswith("gpu") or k == "gres" for k in values), rule
    assert not any(k.startswith("gpu") or k == "gres" for k in prof.get("default-resources", {}))
    assert not GPU_RULES & set(prof.get("groups", {})), "GPU rules must stay out of CPU groups"


def test_gpu_rules_declare_their_gpu_from_the_device():
    blocks = rule_blocks()
    declared = {name for name, block in blocks.items() if re.search(r"^\s+\*\*gpu_resources\(\),$", block, re.M)}
    gpu_rules = {"device_check", "features", "score_chunk", "evaluate_full", "evaluate_*", "transfer_*"}
    assert declared == gpu_rules, declared
    assert not any(re.search(r"gpu\w*=", block) for name, block in blocks.items() if name not in declared)


def test_gpu_rules_take_their_runtime_from_the_config_and_the_profile_names_no_rule():
    """Every GPU rule's runtime is gpu_runtime(<its own name>) (the config's runtime_minutes, the
    numbers benchmarks/job_minutes.py checks), and no profile sets a rule's runtime: the profile's
    default runtime is for the rules that declare none (the CPU rules)."""
    gpu = {name: block for name, block in rule_blocks().items() if "**gpu_resources()" in block}
    expected = {
        "device_check": '"device_check"',
        "features": '"features"',
        "score_chunk": '"score_chunk"',
        "evaluate_full": '"evaluate_full"',
        "evaluate_*": 'f"evaluate_{_method}"',
        "transfer_*": "f\"transfer_{_entry['name']}\"",
    }
    assert set(gpu) == set(expected), sorted(gpu)
    for name, block in gpu.items():
        runtimes = re.findall(r"^\s+runtime=(.*),$", block, re.M)
        assert runtimes == [f"gpu_runtime({expected[name]})"], (name, runtimes)
    for name, block in rule_blocks().items():
        if name not in gpu:
            assert not re.search(r"\bruntime\s*=", block), name
    for name in ("local", "slurm"):
        for rule, values in load(name).get("set-resources", {}).items():
            assert "runtime" not in values, (name, rule)


def test_slurm_profile_keys():
    prof = load("slurm")
    assert prof["executor"] == "slurm"
    assert prof["jobs"] > 0 and prof["latency-wait"] > 0 and prof["retries"] >= 1
    assert "attempt" in str(prof["default-resources"]["mem_mb"])
    assert set(prof["groups"]) <= CPU_RULES
    assert set(prof["groups"].values()) <= set(prof["group-components"])
    assert prof["cores"] == 1  # a group job asks for one CPU and runs its jobs one by one
    # the plugin rejects these inside slurm_extra; they must come from resources
    for values in [prof["default-resources"], *prof.get("set-resources", {}).values()]:
        assert not re.search(r"--(gres|gpus|mem|partition)\b", str(values.get("slurm_extra", "")))


def test_local_profile_limits_gpu_jobs():
    prof = load("local")
    assert prof["resources"] == {"gpu": 1}
    assert "executor" not in prof


# ----------------------------------------------------------------------------- dry runs
@pytest.mark.slow
@pytest.mark.parametrize("name", ["local", pytest.param("slurm", marks=needs_slurm_plugin)])
def test_profile_plans_default_study(name, tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake(
        tmp_path,
        "-n",
        "--profile",
        str(PROFILES / name),
        "--cores",
        "2",
        "--config",
        f"results={tmp_path / 'results'}",
        env=clean_env(),
        timeout=120,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "This was a dry-run" in log
    planned = planned_resources(log)
    assert {"features", "score_chunk", "evaluate_full", "split", "merge_scores"} <= set(planned), sorted(planned)
    for rule, jobs in planned.items():
        for res in jobs:
            if rule in GPU_RULES:
                assert res.get("gpu") == "1", (rule, res)
            else:
                assert "gpu" not in res, (rule, res)
    # the GPU pre-flight: planned once, an input of every GPU rule's job and of `prepare` (the
    # study's first job), of no other
    inputs = planned_inputs(log)
    assert len(inputs["device_check"]) == 1, sorted(inputs)
    for rule, lines in inputs.items():
        waits = rule in GPU_RULES - {"device_check"} or rule == "prepare"
        assert all(("results/device_check.json" in line) == waits for line in lines), (rule, lines)
    if name == "slurm":
        assert "Group job selection" in log and "Group job splits" in log
        assert planned["score_chunk"][0]["mem_mb"] == "8000"  # "8000 * attempt" at attempt 1


def grouped_rules(log: str, group: str) -> list[set[str]]:
    """The rules of each `group` job in a dry run's listing."""
    out = []
    for block in log.split(f"Group job {group} ")[1:]:
        body = re.split(r"\n\[[^\n]*\] (?!\s)", block)[0]  # up to the next top-level entry
        out.append(set(re.findall(r"^\s+rule (\w+):", body, re.M)))
    return out


@pytest.mark.slow
@needs_slurm_plugin
def test_every_select_rule_is_in_the_selection_group(tmp_path):
    """The select rules declare their group themselves, so a method no profile names (`typical`
    here) is submitted with merge_scores and the other select_* jobs of its class."""
    from tests.helpers import small_config, write_config

    config = small_config(tmp_path / "results", device="auto")
    config["datasets"]["digits"]["classes"] = [3]
    config["selection"]["methods"] = ["greedy", "typical"]
    path = write_config(tmp_path / "study.yaml", config)
    proc = snakemake(
        tmp_path,
        "-n",
        "--profile",
        str(PROFILES / "slurm"),
        "--cores",
        "2",
        "--configfile",
        str(path),
        env=clean_env(),
        timeout=120,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert grouped_rules(log, "selection") == [{"merge_scores", "select_greedy", "select_typical"}]


# ----------------------------------------------------------------------------- stand-in SLURM
FAKE_SLURM = '''#!{python}
"""Stand-in for a SLURM command: logs its arguments; sbatch hands out job ids, sacct calls
every job of the run COMPLETED (the outputs never appear, so Snakemake fails the jobs)."""
import fcntl, json, os, sys
from pathlib import Path

d = Path(os.environ["FAKE_SLURM_DIR"])
tool = Path(sys.argv[0]).name
with open(d / "calls.jsonl", "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.write(json.dumps({{"tool": tool, "args": sys.argv[1:]}}) + "\\n")
if tool == "sbatch":
    with open(d / "jobids", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        jobid = 1000 + len(f.read().split()) + 1
        f.write(f"{{jobid}}\\n")
    print(jobid)  # the plugin calls sbatch --parsable: "<id>" or "<id>;<cluster>"
elif tool == "sacct" and "--name" in sys.argv:  # status query: JobIdRaw|State
    ids = (d / "jobids").read_text().split() if (d / "jobids").exists() else []
    print("\\n".join(f"{{i}}|COMPLETED" for i in ids))
elif tool == "sinfo" and "-N" in sys.argv:  # protolib's pre-check: partition|CPUs|memory|GRES per node
    print("main*|64|256000|gpu:4")
elif tool == "sinfo":
    print("PARTITION\\nmain*")
'''

TINY = {
    "results": "results",
    "seed": 0,
    "device": "auto",
    "datasets": {
        "digits": {"classes": [0], "split": {"train": 0.6667, "anomalies_per_other_class": 1.0}, "candidates": 10}
    },
    "models": {"knn": {"detector": "knn", "backbone": "pixels", "k": 2}},
    "runs": [{"dataset": "digits", "model": "knn"}],
    "scores": {"chunk_size": 10},
    "selection": {"M": [1], "methods": ["greedy"], "random": {"repeats": 1}},
    "report": {"fig2": {"dataset": "digits", "model": "knn"}},
}


def sbatch_calls(fake_dir: Path) -> list[list[str]]:
    calls = [json.loads(line) for line in (fake_dir / "calls.jsonl").read_text().splitlines()]
    return [c["args"] for c in calls if c["tool"] == "sbatch"]


def opt(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def fake_slurm(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The stand-in SLURM commands: their folder (calls.jsonl) and the environment using them."""
    fake = tmp_path / "fake_slurm"
    bin_dir = fake / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ["sbatch", "sacct", "squeue", "scontrol", "sinfo", "sshare", "sacctmgr", "scancel"]:
        script = bin_dir / tool
        script.write_text(FAKE_SLURM.format(python=sys.executable))
        script.chmod(0o755)
    env = clean_env(bin_dir)
    env["FAKE_SLURM_DIR"] = str(fake)
    return fake, env


@pytest.mark.slow
@needs_slurm_plugin
@pytest.mark.parametrize(("device", "gpu_model"), [("auto", None), ("cpu", None), ("auto", "tesla"), ("cpu", "tesla")])
def test_slurm_submits_gpu_rules_with_gpu_request(tmp_path, device, gpu_model):
    """device auto (or cuda): the GPU rules ask for a GPU, of the config's gpu_model if set, and
    the first of them is the pre-flight `device_check`, submitted once (its `retries: 0` beats
    the profile's); device cpu: no rule asks for a GPU, so the same profile runs on a CPU-only
    cluster (which rejects --gpus), and there is no pre-flight; CPU rules never ask, gpu_model
    or not."""
    fake, env = fake_slurm(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    config = {**TINY, "device": device, **({"gpu_model": gpu_model} if gpu_model else {})}
    config["runtime_minutes"] = {"features": 45}  # the GPU rule's -t, times attempt
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    # The prepared array file (rule `prepare`, CPU) already exists, so under device cpu the
    # first wave is `features` (GPU rule) and the `splits` group (CPU); otherwise it is the
    # pre-flight `device_check` alone (everything else waits for it).
    prepared = Path(Layout(work / "results").data("digits"))
    prepared.parent.mkdir(parents=True)
    prepared.touch()

    # Stand-in SLURM runs nothing, so each job fails for missing outputs and is retried once.
    proc = snakemake(
        work,
        f"results/features/digits/{feature_key(TINY['models']['knn'])}.npy",  # one GPU rule, one CPU rule
        "results/splits/digits/0.json",
        "--profile",
        str(PROFILES / "slurm"),
        "--jobs",
        "2",
        "--retries",
        "1",
        "--latency-wait",
        "1",
        "--seconds-between-status-checks",
        "1",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-logdir",
        str(tmp_path / "slurm_logs"),
        env=env,
        timeout=120,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0  # expected: the stand-in never writes outputs
    assert "has been submitted with SLURM jobid" in log, log[-3000:]
    assert "Exception in run_job" not in log, log[-3000:]

    calls = sbatch_calls(fake)
    by_rule: dict[str, list[list[str]]] = {}
    for args in calls:
        assert "--parsable" in args
        comment = opt(args, "--comment")  # rule_<rule>_wildcards_... or rule_<group>_<rules>
        by_rule.setdefault(comment.split("_wildcards_")[0].removeprefix("rule_"), []).append(args)

    gpu_request = re.compile(r"^--gpus=tesla:1$" if gpu_model else r"^--gpus=1$")
    gpu_job = "features" if device == "cpu" else "device_check"
    assert set(by_rule) == ({gpu_job, "splits_split"} if device == "cpu" else {gpu_job}), sorted(by_rule)
    for args in by_rule[gpu_job]:
        if device == "cpu":
            assert not any(a.startswith(("--gpus", "--gres", "--cpus-per-gpu")) for a in args), args
            assert "--cpus-per-task=1" in args
        else:
            assert any(gpu_request.match(a) for a in args), args
            assert "--cpus-per-gpu=4" in args
    for args in by_rule.get("splits_split", []):
        assert not any(a.startswith(("--gpus", "--gres", "--cpus-per-gpu")) for a in args), args
        assert "--ntasks=1" in args and "--cpus-per-task=1" in args

    # more memory and time on the retry: mem_mb 8000 * attempt, runtime_minutes.features * attempt;
    # the CPU rules' runtime is the profile's default, 60 * attempt; the pre-flight is not
    # retried, and asks for little (runtime_minutes.device_check, 10)
    if device == "cpu":
        assert [opt(a, "--mem") for a in by_rule["features"]] == ["8000", "16000"]
        assert [opt(a, "-t") for a in by_rule["features"]] == ["45", "90"]
        assert [opt(a, "-t") for a in by_rule["splits_split"]] == ["60", "120"]
    else:
        assert [(opt(a, "--mem"), opt(a, "-t")) for a in by_rule["device_check"]] == [("1000", "10")]
    assert [opt(a, "--mem") for a in by_rule.get("splits_split", [])] == (["4000", "8000"] if device == "cpu" else [])
    assert all(opt(a, "-p") == "main" for a in calls)  # sinfo's default partition

    # status is polled with sacct under the run's job name
    run_names = {opt(a, "--job-name") for a in calls}
    assert len(run_names) == 1
    calls_all = [json.loads(line) for line in (fake / "calls.jsonl").read_text().splitlines()]
    sacct = [c["args"] for c in calls_all if c["tool"] == "sacct"]
    assert any("--name" in a and opt(a, "--name") in run_names for a in sacct)


def rule_blocks() -> dict[str, str]:
    """Rule name (generated rules: "<prefix>_*", or the expression that names them, such as the
    report's `_item.name`) -> the text of its definition."""
    blocks = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n\s*rule\b", smk.read_text())[1:]:
            named = re.match(r"\s*(\w+):", block)
            if named is None:  # `rule:` with a generated `name: f"prefix_{...}"`: "prefix_*"
                prefix = re.search(r"name:\s*f?\"(\w+?_?)\{", block)
                blocks[prefix.group(1) + "*" if prefix else re.search(r"name:\s*(\S+)", block).group(1)] = block
            else:
                blocks[named.group(1)] = block
    return blocks


def rule_envs() -> dict[str, str]:
    """Rule name (generated rules: "<prefix>_*") -> its conda directive."""
    envs = {}
    for name, block in rule_blocks().items():
        conda = re.search(r"conda:\s*(\S+)", block)
        envs[name] = conda.group(1) if conda else ""
    return envs


def test_gpu_rules_run_in_the_gpu_environment_and_both_envs_are_pinned():
    envs = rule_envs()
    gpu_rules = {name for name, block in rule_blocks().items() if "**gpu_resources()" in block}
    assert {n for n, env in envs.items() if env == "GPU_ENV"} == gpu_rules
    cpu, cuda = (
        yaml.safe_load((REPO / "envs" / f).read_text())["dependencies"] for f in ("protolib.yaml", "protolib-cuda.yaml")
    )
    assert all(re.fullmatch(r"[\w.-]+=[\d.]+(=\S+)?", dep) for dep in cpu + cuda), "every package pinned"
    assert [d for d in cpu if not d.startswith("pytorch=")] == [d for d in cuda if not d.startswith("pytorch=")]
    assert "pytorch=2.14=cuda*" in cuda


@pytest.mark.slow
@needs_slurm_plugin
def test_a_gpu_model_in_default_resources_is_refused_before_submission(tmp_path):
    """The plugin turns a `gpu_model` resource into --gpus=<model>:1 for every job that has one:
    in default-resources (the former advice) every CPU job would hold a GPU. The run stops first."""
    fake, env = fake_slurm(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(TINY))
    prepared = Path(Layout(work / "results").data("digits"))
    prepared.parent.mkdir(parents=True)
    prepared.touch()
    proc = snakemake(
        work,
        "results/splits/digits/0.json",
        "--profile",
        str(PROFILES / "slurm"),
        "--default-resources",
        "gpu_model=tesla",
        "mem_mb=1000",
        env=env,
        timeout=120,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "these jobs use no GPU but would ask SLURM for one" in log, log[-3000:]
    assert "(split): --gpus=tesla:1" in log, log[-3000:]
    assert not (fake / "calls.jsonl").exists() or not sbatch_calls(fake), "submitted before the check"
