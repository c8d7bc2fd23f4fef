"""The ``--out`` folder of one ``protolib rank`` run.

Checked, created and locked before any image is read, so that a bad ``--out`` (a file on its
path, a dangling link, a folder that cannot be written) or a second run into the same folder is
refused at once, not after minutes of decoding. The lock is ``fcntl.flock`` on
``OUT/.protolib-rank.lock``: the kernel releases it when the process ends, however it ends, so
a killed run never leaves a stale lock.

The outputs are written into a staging folder inside ``--out`` and moved into place only at the
end, ``summary.json`` removed first and written last (:func:`protolib.rank.outputs.publish`), so
``--out`` never holds a mix of two runs: without ``summary.json`` it holds no complete result.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from protolib.rank.options import RankError

LOCK_NAME = ".protolib-rank.lock"
STAGING_PREFIX = ".protolib-rank-partial-"  # a run killed before its end leaves one; the next run removes it
SUMMARY = "summary.json"  # written last: the mark of a complete result
ATTEMPTS = 5  # takes of the lock when another run removes the folder or lock file under this one


def out_path(out_dir: str | os.PathLike[str]) -> Path:
    """``--out`` as a path; an empty one is refused: ``Path('')`` is the current folder, which a
    run would fill with its outputs unasked."""
    if not os.fspath(out_dir):
        raise RankError("--out is empty; name an output folder (it is created if missing)")
    return Path(out_dir)


def check_out_dir(out_dir: Path, folders: list[Path]) -> None:
    """``--out`` must be a folder or creatable as one (no file or dangling link on its path),
    outside every input folder: input folders are read with their subfolders, so outputs inside
    one (contact_sheet.png) would be ranked next time. Whether it can be written is found when
    it is created and locked (:func:`claimed`)."""
    for path in (out_dir, *out_dir.parents):
        if path.is_symlink() and not path.exists():
            raise RankError(
                f"--out {str(out_dir)!r}: {str(path)!r} is a symbolic link to {os.readlink(path)!r}, which does "
                "not exist; create the folder it points to, or choose another --out"
            )
        if path.exists() and not path.is_dir():
            if path == out_dir:
                raise RankError(f"--out {str(out_dir)!r} is an existing file; name a folder (created if missing)")
            raise RankError(
                f"--out {str(out_dir)!r}: {str(path)!r} is a file, not a folder; choose an --out below a folder"
            )
        if path.exists():
            break
    out = out_dir.resolve()
    for folder in folders:
        folder = folder.resolve()
        if out == folder or folder in out.parents:
            raise RankError(
                f"--out {str(out_dir)!r} is inside the input folder {str(folder)!r}: input folders "
                "are read with their subfolders, so the outputs (contact_sheet.png) would be ranked "
                "next time; choose an output folder outside it"
            )


@contextlib.contextmanager
def claimed(out_dir: Path) -> Iterator[Path]:
    """``out_dir`` created and locked for this run; yields an empty staging folder inside it.

    On the way out, however the run ends, the staging folder and the lock file are removed, and
    the folders this run created are removed again if they are empty: a refused or interrupted
    run leaves ``--out`` as it found it."""
    created, fd = _claim(out_dir)
    staging = None
    try:
        for partial in out_dir.glob(STAGING_PREFIX + "*"):  # a killed run's; no run holds it now
            shutil.rmtree(partial, ignore_errors=True)
        try:
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
        except OSError as err:
            raise _unwritable(out_dir, err) from err
        yield staging
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(out_dir / LOCK_NAME)  # before the lock is released: see _take
        os.close(fd)
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty


def _claim(out_dir: Path) -> tuple[list[Path], int]:
    """Create ``out_dir`` and take its lock: (the folders made, the open lock file)."""
    for _ in range(ATTEMPTS):
        try:
            created = _make_dirs(out_dir)
        except OSError as err:
            raise _unwritable(out_dir, err) from err
        try:
            fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError as err:
            if out_dir.is_dir():
                raise _unwritable(out_dir, err) from err
            continue  # another run removed the empty folder it had made after this one found it: again
        except OSError as err:
            raise _unwritable(out_dir, err) from err
        if _take(fd, out_dir):
            return created, fd
    raise RankError(f"--out {str(out_dir)!r}: could not take its lock in {ATTEMPTS} tries; run again")


def _take(fd: int, out_dir: Path) -> bool:
    """Lock the open lock file and write this process's id into it; False when the file was
    removed or replaced between opening and locking (a run ending unlinks it before it releases
    the lock, so a lock taken on its old file would lock nothing: open it again)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise RankError(
            f"another protolib rank run is writing to {str(out_dir)!r} (pid {pid}); wait for it or choose another --out"
        ) from None
    except OSError as err:
        os.close(fd)
        raise _unwritable(out_dir, err) from err
    try:
        same = os.stat(out_dir / LOCK_NAME).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return False
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return True


def _make_dirs(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` and its missing parents; those this call made, outermost first."""
    missing = []
    for path in (out_dir, *out_dir.parents):
        if path.exists():
            break
        missing.append(path)
    made = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:  # made by another run meanwhile
            continue
        made.append(path)
    return made


def _unwritable(out_dir: Path, err: OSError) -> RankError:
    return RankError(
        f"--out {str(out_dir)!r}: cannot create or write to it ({err.strerror or err}); "
        "choose a folder you can write to"
    )
