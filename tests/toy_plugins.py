"""A toy detector, a toy selector and a toy figure registered from outside protolib, as
docs/extending.md describes: one module, named by the study config's ``plugins`` key (the
figure's caption is toy_figure.rst beside it). Used by test_extending.py. Each class is its own
registry entry; its constructor's keywords are its settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from protolib.figures.registry import Context, Figure, Paths, register_figure
from protolib.models import DETECTORS, Detector
from protolib.selection import SELECTORS, Selection, SelectionContext, Selector


@DETECTORS.register("toy_mean")
class MeanImageDetector(Detector):
    """Anomaly score: distance to the mean training image, to the power ``power``."""

    name = "toy_mean"

    def __init__(self, *, power: float = 2.0) -> None:
        self.power = power

    def fit(self, images: np.ndarray) -> MeanImageDetector:
        self.mean_ = images.reshape(len(images), -1).astype(np.float64).mean(0)
        return self

    def score(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float64)
        return ((x - self.mean_) ** 2).sum(1) ** (self.power / 2)


@SELECTORS.register("toy_first")
class FirstCandidates(Selector):
    """The M candidates after the first ``skip``, in the split's order: a selector that uses no
    information."""

    name = "toy_first"

    def __init__(self, *, skip: int = 0) -> None:
        self.skip = skip

    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection:
        self._check_size(context, M + self.skip)
        ids = context.candidates[self.skip : self.skip + M]
        return Selection(ids=[int(i) for i in ids], info={"rule": f"the candidates {self.skip}..{self.skip + M - 1}"})


def _histogram_inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    c = ctx.choice
    return {"scores": paths.scores(c.dataset, c.model, c.cls)}


def _write_histogram(job: Any) -> None:
    """The single-sample val AUROCs of the chosen class: a histogram (PNG, PDF) and the sorted
    values (JSON sidecar)."""
    import matplotlib.pyplot as plt

    from protolib import io, plots
    from protolib.checks import read_scores

    auroc = np.sort(np.asarray(read_scores(job.input.scores)["sample_auroc"], dtype=np.float64))
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.hist(auroc, bins=10)
    ax.set_xlabel("single-sample val AUROC")
    stem = Path(job.output[0]).with_suffix("")
    plots.save(fig, stem)  # PNG and PDF, atomically
    io.write_json(stem.with_suffix(".json"), {"choice": dict(job.params.choice), "sample_auroc": auroc.tolist()})


TOY_FIGURE = register_figure(
    Figure(
        name="toy_auroc_hist",
        title="Toy: single-sample AUROCs",
        write=_write_histogram,
        inputs=_histogram_inputs,
        params=lambda ctx: {"choice": ctx.choice.as_dict()},
        chooses_run=True,
        needs_run=True,
        caption=Path(__file__).with_name("toy_figure.rst"),
    )
)
