"""Whether another Snakemake run holds a results folder.

Two runs of one study from one working directory: the second found the first's running jobs'
outputs marked incomplete and stopped with Snakemake's IncompleteFilesException, whose advice
(``--rerun-incomplete``) would rerun the first run's jobs under it. The Snakefile asks this
module first, from the lock files Snakemake keeps under ``.snakemake/locks`` while it runs
(each lists the files that run reads and writes), and says which run holds the folder.

Those locks are per working directory: a run started from another folder with the same
``results`` would write into the first run's files. So a run also holds the results folder
itself (:func:`hold`: ``fcntl.flock`` on a file in it, which the kernel releases when the run
ends, however it ends).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import socket
from pathlib import Path

from protolib.layout import top_level_names

#: the file a run locks in its results folder (removed when the run ends)
LOCK_NAME = ".snakemake-run.lock"
_HELD: dict[Path, int] = {}  # results folders this process holds: the Snakefile may be read twice


def lock_holding(results: str | os.PathLike[str], workdir: str | os.PathLike[str] = ".") -> Path | None:
    """The lock file of a run in ``workdir`` that lists a file under ``results``, if any (it may
    be stale: a run killed with SIGKILL leaves its locks until ``snakemake --unlock``)."""
    locks = Path(workdir, ".snakemake", "locks")
    if not locks.is_dir():
        return None
    root = Path(workdir, results).resolve()
    ours = top_level_names()  # a second study's folder inside this one's (results/fashion_mnist) is not ours
    for lock in sorted(locks.glob("*.lock")):
        try:
            lines = lock.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            path = Path(workdir, line.strip()).resolve()
            if line.strip() and root in path.parents and path.relative_to(root).parts[0] in ours:
                return lock
    return None


#: options of a snakemake command line that take or release no lock (they plan, list or draw)
NO_LOCK_OPTIONS = {
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--d3dag",
    "--list-target-rules",
    "--lt",
    "--list-changes",
    "--lc",
    "--list-input-changes",
    "--li",
    "--list-params-changes",
    "--lp",
    "--list-code-changes",
    "--lv",
    "--list-untracked",
    "--lu",
    "--unlock",
    "--nolock",
    "--dry-run",
    "--dryrun",
    "--cleanup-metadata",
    "--cm",
    "--summary",
    "--detailed-summary",
    "--list-rules",
    "--list",
    "--lint",
    "--report",
}


def locking_run(argv: list[str]) -> bool:
    """Whether a snakemake command line runs jobs under a lock (not a dry run, --unlock, ...)."""
    for arg in argv:
        if arg in NO_LOCK_OPTIONS or arg.split("=", 1)[0] in NO_LOCK_OPTIONS:
            return False
        if arg.startswith("-") and not arg.startswith("--") and set(arg[1:]) & set("nSDl") and arg[1:].isalpha():
            return False  # -n, -np: a dry run; -S, -D: summaries; -l: the rules
    return True


def held_message(results: str, lock: Path) -> str:
    return (
        f"another snakemake run holds the results folder {results!r} (its lock file: {lock}); wait for it to "
        "finish, or if none is running (a run was killed), release it with `snakemake --unlock` (with the same "
        "--configfile/--profile) and run again"
    )


def hold(results: str | os.PathLike[str]) -> str | None:
    """Hold ``results`` for this process's lifetime; another process's run holding it: the
    message saying so (with its pid, host and working directory). A results folder this creates
    is removed again at exit when the run leaves it empty (a run refused before any job)."""
    root = Path(results).expanduser().resolve()
    if root in _HELD:
        return None
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # the file may be unlinked by a run ending between our open and our lock
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "a run"
            os.close(fd)
            return (
                f"another snakemake run holds the results folder {str(results)!r} ({holder}); wait for it to "
                "finish, or give this run its own results: folder"
            )
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(root / LOCK_NAME).st_ino:
                break
        os.close(fd)
    else:
        return f"could not lock the results folder {str(results)!r}; run again"
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started in {os.getcwd()}".encode())
    _HELD[root] = fd
    atexit.register(_release, root, fd, created)
    return None


def _release(root: Path, fd: int, created: bool) -> None:
    with contextlib.suppress(OSError):
        os.unlink(root / LOCK_NAME)  # while still locked: no other run holds this file
    os.close(fd)
    _HELD.pop(root, None)
    if created:
        with contextlib.suppress(OSError):
            root.rmdir()  # only when empty
