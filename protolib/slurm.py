"""Stop a SLURM run before submission when a job asks for more than any node can give.

SLURM accepts some such jobs and leaves them PENDING forever (e.g. more CPUs than any node in
the partition has: reason `PartitionConfig`), and the executor plugin keeps polling them, so the
run would wait without a word. The Snakefile's `onstart` calls `check_workflow` with the slurm
executor: it compares each job's (and group job's) request, as the plugin will submit it, with
the nodes `sinfo` lists, and raises `UnsatisfiableRequest` naming the rule and the request.
It also refuses a job that uses no GPU but would ask for one (a `gpu_model` in the profile's
default-resources: the plugin turns it into `--gpus=<model>:1` for every job).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class UnsatisfiableRequest(RuntimeError):
    """A job asks for more CPUs, memory or GPUs than any node of its partition has."""


@dataclass(frozen=True)
class Node:
    partition: str
    default: bool  # the cluster's default partition (sinfo marks it with '*')
    cpus: int
    mem_mb: int
    gpus: int


@dataclass(frozen=True)
class Request:
    name: str  # rule, or group: its rules
    partition: str | None  # None: the default partition
    cpus: int
    mem_mb: int
    gpus: int

    def __str__(self) -> str:
        where = f"partition {self.partition}" if self.partition else "the default partition"
        return f"{self.cpus} CPUs, {self.mem_mb} MB memory, {self.gpus} GPUs in {where}"


def parse_sinfo(text: str) -> list[Node]:
    """Nodes from `sinfo -h -N -o '%P|%c|%m|%G'` (a node shows once per partition)."""
    nodes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        part, cpus, mem, gres = line.strip().split("|")
        gpus = sum(int(m.group(1)) for m in re.finditer(r"gpu(?::[^:,(]+)?:(\d+)", gres))
        nodes.append(Node(part.rstrip("*"), part.endswith("*"), int(cpus.rstrip("+")), int(mem.rstrip("+")), gpus))
    return nodes


def query_nodes() -> list[Node] | None:
    """The cluster's nodes, or None (with a warning) when sinfo cannot tell."""
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%P|%c|%m|%G"], capture_output=True, text=True, check=True)
        return parse_sinfo(out.stdout)
    except (OSError, subprocess.CalledProcessError, ValueError) as err:
        print(f"protolib: could not read the nodes from sinfo ({err}); requests are not checked", file=sys.stderr)
        return None


def unsatisfiable(requests: Iterable[Request], nodes: list[Node]) -> list[str]:
    """One message per request that no node of its partition can hold."""
    problems = []
    for req in requests:
        part = [n for n in nodes if (n.partition == req.partition if req.partition else n.default)]
        if not part:
            problems.append(f"{req.name}: asks for {req} but sinfo lists no such partition")
            continue
        if not any(n.cpus >= req.cpus and n.mem_mb >= req.mem_mb and n.gpus >= req.gpus for n in part):
            biggest = max(part, key=lambda n: (n.gpus, n.cpus, n.mem_mb))
            problems.append(
                f"{req.name}: asks for {req}, but no node there has that much "
                f"(largest: {biggest.cpus} CPUs, {biggest.mem_mb} MB, {biggest.gpus} GPUs)"
            )
    return problems


def job_request(job: Any) -> Request:
    """What the slurm executor plugin will ask sbatch for, for one Snakemake job or group job."""
    # here: the SLURM executor plugin only where a cluster run is checked
    from snakemake_executor_plugin_slurm.partitions import get_job_cpu_requirement, parse_gpu_requirements

    res = job.resources
    gpus, _model = parse_gpu_requirements(job)
    cpus, _kind = get_job_cpu_requirement(job)
    cpus = max(cpus, 1) * (gpus if _kind == "gpu" else 1)
    mem = res.get("mem_mb_per_cpu", 0) * cpus if res.get("mem_mb_per_cpu") else res.get("mem_mb", 0)
    name = (
        f"group {job.groupid} ({', '.join(sorted({j.rule.name for j in job.jobs}))})"
        if job.is_group()
        else f"rule {job.rule.name}"
    )
    return Request(name, res.get("slurm_partition") or None, int(cpus), int(mem or 0), int(gpus))


def stray_gpu_requests(jobs: Iterable[Any]) -> list[str]:
    """Jobs without a GPU (`gpu` resource 0 or absent: CPU rules, GPU rules under `device: cpu`)
    whose sbatch arguments, as the plugin builds them, would still ask for a GPU."""
    # here: the SLURM executor plugin only where a cluster run is checked
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    problems = []
    for job in jobs:
        if int(job.resources.get("gpu", 0) or 0) == 0:
            gres = set_gres_string(job).strip()
            if "gpu" in gres:
                problems.append(f"{job_request(job).name}: {gres}")
    return sorted(set(problems))


def check_workflow(workflow: Any) -> None:
    """Raise `UnsatisfiableRequest` if a job of this run cannot fit a node (slurm executor only)."""
    if getattr(workflow.executor_plugin, "name", None) != "slurm":
        return
    dag = workflow.dag
    # a grouped job is submitted as its group job (Snakemake keeps the map in dag._group)
    submitted = {dag._group.get(job, job) if job.group else job for job in dag.needrun_jobs()}
    stray = stray_gpu_requests(submitted)
    if stray:
        raise UnsatisfiableRequest(
            "these jobs use no GPU but would ask SLURM for one: a `gpu_model` (or a gpu `gres`) in the "
            "profile's default-resources reaches every job (the slurm plugin then asks for "
            "--gpus=<model>:1); remove it there and set the config key gpu_model instead, which "
            "only the GPU rules use (docs/cluster.md):\n  " + "\n  ".join(stray)
        )
    requests = {job_request(job) for job in submitted}
    nodes = query_nodes()
    if nodes is None:
        return
    problems = unsatisfiable(sorted(requests, key=lambda r: r.name), nodes)
    if problems:
        raise UnsatisfiableRequest(
            "SLURM could never start these jobs (they would stay PENDING forever); lower their "
            "resources (the rule's `resources:`, or `set-resources`/`cores` in the profile) or "
            "choose a partition with bigger nodes (`slurm_partition`):\n  " + "\n  ".join(problems)
        )


#: rule-name prefixes whose rules share one `runtime_minutes` entry unless named themselves
RUNTIME_FAMILIES = ("evaluate", "transfer")


def runtime_minutes(config: dict[str, Any], rule: str) -> int:
    """Minutes one job of GPU rule ``rule`` asks for on its first attempt (sbatch -t): the
    config's ``runtime_minutes`` entry for the rule, else for its family (``evaluate`` for every
    evaluate_<method>, ``transfer`` for every transfer_<name>). The one source of a GPU rule's
    runtime, so that benchmarks/job_minutes.py compares its estimates with what is asked for."""
    table = config.get("runtime_minutes", {})
    family = rule.split("_", 1)[0]
    for key in (rule, family if family in RUNTIME_FAMILIES else None):
        if key in table:
            return int(table[key])
    raise KeyError(
        f"runtime_minutes: no entry for GPU rule {rule!r} (expected the key {rule!r}"
        + (f" or {family!r})" if family in RUNTIME_FAMILIES else ")")
    )
