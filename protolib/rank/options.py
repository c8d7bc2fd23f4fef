"""The settings of one ``protolib rank`` run (every CLI option), checked before any folder is read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protolib.models import DETECTORS

#: the largest ``--seed``: numpy's and scikit-learn's seeds are unsigned 32-bit integers
MAX_SEED = 2**32 - 1
#: the devices ``--device`` takes (no mps: rank is tested on CUDA and the CPU)
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


class RankError(Exception):
    """A problem with the user's input (folder, numbers, files); the CLI exits with status 2."""


@dataclass
class RankOptions:
    """What ``protolib rank`` does; the defaults are the CLI's (see :mod:`protolib.rank`)."""

    model: str = "knn"
    backbone: str | None = None  # default: pixels for knn without weights, else the paper's backbone
    weights: str | None = None
    image_size: int | None = None  # default: 64 for pixels, else the paper's input size
    M: int = 10
    n_atypical: int = 10
    neighbours: int = 5
    coreset_exclude: int | None = None  # default: n_atypical, at most a tenth of the images
    pca: int | None = None
    val_normal: str | Path | None = None
    val_anomalous: str | Path | None = None
    population: int = 1000
    generations: int = 500
    candidates: int | None = None
    device: str = "auto"
    batch_size: int = 64
    seed: int = 0
    on_error: str = "skip"
    model_options: dict[str, Any] | None = None  # extra keys of the model block (--set KEY=VALUE)
    contact_sheet: bool = True
    progress: bool | None = None  # None: progress bars only on a terminal
    knn_index: str = "flat"  # flat: exact kNN search; ivf: faiss's inverted file (approximate, recall printed)

    @property
    def with_val(self) -> bool:
        """Whether labelled val folders are given (single-sample scores, greedy, evolutionary)."""
        return self.val_normal is not None


def check_options(opts: RankOptions) -> None:
    """Every number, the model name and the device, each error naming its option."""
    if opts.M < 1:
        raise RankError(f"M must be at least 1, got {opts.M}")
    if opts.n_atypical < 0:
        raise RankError(f"--n-atypical must be 0 or more, got {opts.n_atypical}")
    if opts.neighbours < 1:
        raise RankError(f"--neighbours must be at least 1, got {opts.neighbours}")
    if (opts.val_normal is None) != (opts.val_anomalous is None):
        raise RankError("give both --val-normal and --val-anomalous, or neither")
    if opts.with_val and (opts.population < 2 or opts.generations < 0):
        raise RankError(
            f"--population must be at least 2 and --generations 0 or more, got {opts.population}, {opts.generations}"
        )
    if opts.candidates is not None and opts.candidates < 1:
        raise RankError(f"--candidates must be at least 1, got {opts.candidates}")
    if opts.with_val and opts.candidates is not None and opts.candidates < opts.M:
        raise RankError(f"M = {opts.M} is larger than --candidates {opts.candidates}")
    if opts.coreset_exclude is not None and opts.coreset_exclude < 0:
        raise RankError(f"--coreset-exclude must be 0 or more, got {opts.coreset_exclude}")
    if opts.batch_size < 1:
        raise RankError(f"--batch-size must be at least 1, got {opts.batch_size}")
    if not isinstance(opts.seed, int) or not 0 <= opts.seed <= MAX_SEED:
        raise RankError(f"--seed must be a whole number from 0 to {MAX_SEED} (2**32 - 1), got {opts.seed!r}")
    if opts.knn_index not in ("flat", "ivf"):
        raise RankError(f"--knn-index must be flat or ivf, got {opts.knn_index!r}")
    check_model_name(opts.model)
    if not DEVICE_PATTERN.fullmatch(opts.device):
        raise RankError(f"--device must be auto, cpu, cuda or cuda:N, got {opts.device!r}")


#: options read only with val folders (the greedy and evolutionary subsets)
VAL_ONLY = {"population": "--population", "generations": "--generations", "candidates": "--candidates"}


def ignored_options(opts: RankOptions) -> list[str]:
    """The options set away from their defaults that this run does not read (said in a note)."""
    if opts.with_val:
        return []
    defaults = RankOptions()
    return [flag for field, flag in VAL_ONLY.items() if getattr(opts, field) != getattr(defaults, field)]


def check_model_name(model: str) -> None:

    if model not in DETECTORS:
        raise RankError(f"--model: unknown model {model!r}; choose from {', '.join(DETECTORS.names())}")
