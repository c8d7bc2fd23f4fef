"""Which device a computation runs on, said out loud and recorded.

``device: auto`` picks the GPU that is visible, else the CPU (a laptop). A process that was
*given* a GPU -- ``CUDA_VISIBLE_DEVICES`` set, as SLURM does for a job granted ``--gpus``, or
``device: cuda`` -- but whose torch cannot use it stops at once with :class:`DeviceError`,
naming the torch build, ``CUDA_VISIBLE_DEVICES`` and the driver's error: otherwise a CPU-only
torch, a CUDA build newer than the driver, or a conda env solved without a driver would run a
GPU job on the CPU, slowly and without a word.

Every device this process resolved is remembered; :func:`run_record` (the ``run`` entry that
:mod:`protolib.io` adds to every output that records its config) names it with the GPU, torch
and CUDA versions. ``python -m protolib.device [auto|cuda|...]`` prints what a job would see.
"""

from __future__ import annotations

import ast
import os
import sys
from importlib import metadata, util
from pathlib import Path
from typing import Any

#: device files through which torch.cuda reaches a GPU: NVIDIA (Linux, WSL2's /dev/dxg, Jetson's
#: /dev/nvmap) and AMD ROCm (/dev/kfd). Without any of them torch.cuda.is_available() is False,
#: so ``auto`` answers ``cpu`` without importing torch (4 s at the start of every job)
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/nvmap", "/dev/kfd")

#: what to do when a GPU was given but cannot be used
ADVICE = (
    "install a torch built for CUDA that this node's driver supports (docs/cluster.md, "
    '"Check the GPU environment"), or run without a GPU: --config device=cpu (then no job asks '
    "SLURM for one; protolib rank: --device cpu)"
)

_resolved: list[str] = []  # devices this process computed on, in first-use order


class DeviceError(RuntimeError):
    """A GPU was asked for or granted, and torch cannot use it."""


def gpu_given() -> str | None:
    """``CUDA_VISIBLE_DEVICES`` when it grants GPUs (SLURM sets it for a job with ``--gpus``);
    None when unset, empty or ``-1`` (GPUs hidden)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return value if value and value != "-1" else None


def gpu_device_files() -> list[str]:
    return [f for f in GPU_DEVICE_FILES if Path(f).exists()]


def resolve_device(device: str = "auto") -> str:
    """The torch device to compute on: ``auto`` -> ``cuda`` when torch can use a GPU, else
    ``cpu``; raises :class:`DeviceError` when a GPU was given (``CUDA_VISIBLE_DEVICES``) or
    named (``cuda``, ``cuda:N``) but torch cannot use it."""
    if device == "auto":
        if "torch" not in sys.modules and gpu_given() is None and not gpu_device_files():
            return _remember("cpu")
        # here: torch (~2 s) only when a GPU may be there; CPU jobs skip it
        import torch

        if torch.cuda.is_available():
            return _remember("cuda")
        if gpu_given() is not None:
            raise DeviceError(diagnosis("auto"))
        return _remember("cpu")
    if device.startswith("cuda"):
        # here: torch (~2 s) only when a GPU is named
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise DeviceError(diagnosis(device))
    return _remember(device)


def _remember(device: str) -> str:
    if device not in _resolved:
        _resolved.append(device)
    return device


def torch_build() -> tuple[str | None, str | None]:
    """(torch version, the CUDA version it was built for or None for a CPU-only build), read
    without importing torch where it is not imported yet (version.py is plain assignments)."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        return torch.__version__, torch.version.cuda
    try:
        version = metadata.version("torch")
        spec = util.find_spec("torch")
    except (metadata.PackageNotFoundError, ValueError, ImportError):
        return None, None
    found: dict[str, Any] = {"__version__": version, "cuda": None}
    if spec is not None and spec.submodule_search_locations:
        try:
            tree = ast.parse((Path(list(spec.submodule_search_locations)[0]) / "version.py").read_text())
            for node in tree.body:
                target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
                if isinstance(target, ast.Name) and target.id in found and node.value is not None:
                    found[target.id] = ast.literal_eval(node.value)
        except (OSError, SyntaxError, ValueError):
            pass
    version, cuda = str(found["__version__"]), found["cuda"]
    return version, cuda


def describe_build() -> str:
    version, cuda = torch_build()
    if version is None:
        return "torch is not installed"
    return f"torch {version}, " + (f"built for CUDA {cuda}" if cuda else "a CPU-only build")


def driver_error() -> str:
    """What torch says when it starts CUDA (e.g. "Found no NVIDIA driver on your system")."""
    # here: torch (~2 s) only for this diagnosis
    import torch

    try:
        torch.cuda.init()
        count = torch.cuda.device_count()
    except Exception as err:  # torch raises RuntimeError/AssertionError with the driver's text
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"CUDA started with {count} GPU(s) visible"


def diagnosis(device: str) -> str:
    """One message: what was asked, what torch and the machine show, and what to do."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    asked = (
        f"device: {device}" if device != "auto" else f"device: auto with a GPU granted (CUDA_VISIBLE_DEVICES={visible})"
    )
    files = ", ".join(gpu_device_files()) or "none"
    return (
        f"{asked}, but torch cannot use a CUDA GPU here: {describe_build()}; "
        f"CUDA_VISIBLE_DEVICES={'unset' if visible is None else repr(visible)}; GPU device files: {files}; "
        f"driver: {driver_error()}. Not running on the CPU instead: {ADVICE}"
    )


def config_problem(device: str) -> str | None:
    """Why ``device`` cannot work on this machine, when that is known before any job runs:
    ``cuda``/``cuda:N`` where there are no GPU device files or torch sees no (such) GPU."""
    if not device.startswith("cuda"):
        return None
    if not gpu_device_files() and "torch" not in sys.modules:
        return (
            f"device: {device}, but this machine has no GPU (none of {', '.join(GPU_DEVICE_FILES)} exists; "
            f"{describe_build()}); use device: auto or cpu, or run the jobs on GPU nodes (docs/cluster.md)"
        )
    try:
        resolve_device(device)
    except DeviceError as err:
        return str(err)
    finally:
        if device in _resolved:
            _resolved.remove(device)  # a check, not a computation
    return None


def check_workflow(workflow: Any, device: str) -> None:
    """The Snakefile's ``onstart``: with the local executor the jobs run on this machine, so a
    ``device`` it cannot serve is refused before any job starts (on a cluster the login node
    has no GPU, and each GPU job checks its own node: :func:`resolve_device`)."""
    if getattr(getattr(workflow, "executor_plugin", None), "name", None) != "local":
        return
    problem = config_problem(device)
    if problem:
        raise DeviceError(problem)


def run_record() -> dict[str, Any]:
    """Where this process computed: the device(s) resolved (``cpu`` when none was), the GPU's
    name, and the torch and CUDA versions."""
    devices = list(_resolved) or ["cpu"]
    version, cuda = torch_build()
    gpus = []
    named = []
    for device in devices:
        if device.startswith("cuda"):
            # here: torch (~2 s) only when a GPU is named
            import torch

            index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
            named.append(f"cuda:{index}")
            gpus.append(torch.cuda.get_device_name(index))
        else:
            named.append(device)
    return {"device": ", ".join(named), "gpu": ", ".join(gpus) or None, "torch": version, "torch_cuda": cuda}


def describe_run(record: dict[str, Any] | None = None) -> str:
    """One line for a log: ``device cuda:0 (NVIDIA H200; torch 2.14.1+cu130, built for CUDA 13.0)``."""
    r = record or run_record()
    parts = [r["gpu"]] if r["gpu"] else []
    build = f"built for CUDA {r['torch_cuda']}" if r["torch_cuda"] else "CPU-only build"
    parts.append(f"torch {r['torch']}, {build}" if r["torch"] else "torch not installed")
    return f"device {r['device']} ({'; '.join(parts)})"


def main(argv: list[str]) -> int:
    """Print what a job would see: torch build, CUDA_VISIBLE_DEVICES, the driver, the device."""
    device = argv[0] if argv else "auto"
    print(describe_build())
    print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}")
    try:
        # here: torch (~2 s) only in the diagnosis command
        import torch

        print(f"torch.cuda.is_available(): {torch.cuda.is_available()}; driver: {driver_error()}")
    except ImportError:
        pass
    try:
        resolve_device(device)
    except DeviceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"device: {device} -> {describe_run()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
