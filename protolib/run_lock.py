"""Whether another Snakemake run holds a results folder.

Two runs of one study from one working directory: the second found the first's running jobs'
outputs marked incomplete and stopped with Snakemake's IncompleteFilesException, whose advice
(``--rerun-incomplete``) would rerun the first run's jobs under it. The Snakefile asks this
module first, from the lock files Snakemake keeps under ``.snakemake/locks`` while it runs
(each lists the files that run reads and writes), and says which run holds the folder.
"""

from __future__ import annotations

import os
from pathlib import Path


def lock_holding(results: str | os.PathLike[str], workdir: str | os.PathLike[str] = ".") -> Path | None:
    """The lock file of a run in ``workdir`` that lists a file under ``results``, if any (it may
    be stale: a run killed with SIGKILL leaves its locks until ``snakemake --unlock``)."""
    locks = Path(workdir, ".snakemake", "locks")
    if not locks.is_dir():
        return None
    root = Path(workdir, results).resolve()
    for lock in sorted(locks.glob("*.lock")):
        try:
            lines = lock.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.strip() and root in Path(workdir, line.strip()).resolve().parents:
                return lock
    return None


#: options of a snakemake command line that take or release no lock
NO_LOCK_OPTIONS = {
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
        if arg.startswith("-") and not arg.startswith("--") and "n" in arg[1:] and arg[1:].isalpha():
            return False  # -n, -np: a dry run
    return True


def held_message(results: str, lock: Path) -> str:
    return (
        f"another snakemake run holds the results folder {results!r} (its lock file: {lock}); wait for it to "
        "finish, or if none is running (a run was killed), release it with `snakemake --unlock` (with the same "
        "--configfile/--profile) and run again"
    )
