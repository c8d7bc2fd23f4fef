"""Route a Snakemake job's output to its rule's ``log:`` file.

Every rule names a log file under ``<results>/logs/``; a script calls :func:`to_rule_log` first
thing, so that logging, warnings, prints and the output of C extensions (file descriptors 1 and
2) land there instead of being interleaved on the terminal with other jobs. A job that fails
prints its error on the terminal in one line, with the path of the log that holds its traceback,
so Snakemake's own report of the failure names the cause.

The first line a job writes to its log names the device it computes on (``protolib: rule
score_chunk on device cuda:0 (NVIDIA H200; torch 2.14.1+cu130, built for CUDA 13.0)``).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from protolib.device import describe_run, resolve_device


def use_rule_threads(smk: Any) -> None:
    """Run numba's parallel loops on the job's ``threads`` (1 unless the rule says otherwise).

    Snakemake sets OMP_NUM_THREADS and friends to a job's threads, but numba starts one thread
    per core: with ``--cores 2`` a parallel selection job then shares both cores with the other
    running job, and its threads wait for each other at every parallel loop (measured on the
    Fashion-MNIST study: evolutionary jobs spent 2.3x their CPU time in wall time). Call before
    anything imports numba."""
    os.environ["NUMBA_NUM_THREADS"] = str(max(1, int(getattr(smk, "threads", 1) or 1)))


def to_rule_log(smk: Any) -> None:
    """Send this job's stdout, stderr, warnings and ``logging`` to ``smk.log[0]`` (appended)."""
    if not smk.log:
        return
    path = Path(smk.log[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    terminal = os.fdopen(os.dup(2), "w", buffering=1)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("protolib").setLevel(logging.INFO)  # libraries: warnings only
    logging.captureWarnings(True)

    def report_failure(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        sys.stderr.write("".join(traceback.format_exception(kind, error, tb)))
        sys.stderr.flush()
        terminal.write(f"{failure_line(error)} (traceback: {path})\n")
        terminal.flush()

    sys.excepthook = report_failure
    print(f"protolib: rule {getattr(smk, 'rule', '?')} on {job_device(smk)}", flush=True)


def job_device(smk: Any) -> str:
    """Resolve the device of a GPU rule's job (its ``resources`` declare ``gpu``) now, before
    any work, and describe it. A job given a GPU it cannot use stops here (DeviceError); a CPU
    rule's job does not import torch."""
    resources = getattr(smk, "resources", None)
    if resources is not None and "gpu" in resources.keys():  # noqa: SIM118 - Snakemake's Resources: `in` tests values
        resolve_device((getattr(smk, "config", None) or {}).get("device", "auto"))
    return describe_run()


#: errors whose message already says what is wrong, where and what to do (no type name needed)
_EXPLAINED = (ValueError, KeyError, OSError)


def failure_line(error: BaseException) -> str:
    """What a failed job prints on the terminal: its error in one line (the traceback goes to the
    job's log). Errors of other kinds (a bug, most likely) keep their type name."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    message = " ".join(str(message).split()) or type(error).__name__
    if not isinstance(error, _EXPLAINED):
        message = f"{type(error).__name__}: {message}"
    return f"error: {message}"
