"""Atomic file output with provenance.

Every file the pipeline writes goes through these helpers: the content is written to a
temporary file in the target folder and renamed into place, so a job killed mid-way never
leaves a half-written output that a rerun would trust.

Provenance: a JSON object or ``.npz`` ``meta`` that records its ``config`` also gets ``run``,
where it was computed (:func:`protolib.device.run_record`: device, GPU, torch and CUDA
versions), added here once for every output rather than by each writer.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from protolib.device import run_record


def _umask() -> int:
    """The process umask: from /proc on Linux (no side effect on other threads), else by
    setting it and setting it back (os offers no getter)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The file ends with the mode a plain ``open(path, "w")`` would give (0666 less the umask),
    not mkstemp's private 0600, so colleagues on a shared file system can read the results."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def with_run(obj: Any) -> Any:
    """``obj`` with a ``run`` entry (where it was computed) when it records its ``config``."""
    if isinstance(obj, dict) and "config" in obj and "run" not in obj:
        return {**obj, "run": run_record()}
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON with sorted keys so the same content always gives the same bytes."""
    write_text(path, json.dumps(with_run(obj), indent=1, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def write_npz(path: str | os.PathLike[str], **arrays: Any) -> None:
    """Write an uncompressed .npz atomically; ``meta`` (a dict) is stored as JSON text."""
    buf = io.BytesIO()
    stored = {}
    for key, value in arrays.items():
        if key == "meta":
            stored[key] = np.array(json.dumps(with_run(value), sort_keys=True, default=_json_default))
        else:
            stored[key] = np.asarray(value)
    np.savez(buf, **stored)
    write_bytes(path, buf.getvalue())


def read_npz(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an .npz written by :func:`write_npz`; ``meta`` comes back as a dict."""
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: unreadable array file ({err})") from err
    if "meta" in out:
        out["meta"] = json.loads(str(out["meta"]))
    return out


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    write_bytes(path, buf.getvalue())


def save_figure(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> None:
    """Save a matplotlib figure atomically, the format taken from the target's suffix."""
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=target.suffix.lstrip("."), **kwargs)
