"""Fig. 7: the long tail, distances of a class's training images to its feature centre, with
images from the centre and the tail (paper: MNIST 2)."""

from __future__ import annotations

from typing import Any

from protolib.figures.registry import Context, Figure, Paths, register_figure


def _inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    c = ctx.choice
    return {
        "data": paths.data(c.dataset),
        "split": paths.split(c.dataset, c.cls),
        "features": paths.features(c.dataset, c.model),
    }


def _write(job: Any) -> None:
    from protolib import report  # pandas, matplotlib: in the job only, not when the workflow is parsed

    report.write_fig7(job.input.data, job.input.split, job.input.features, dict(job.params.choice), job.output[0])


FIGURE = register_figure(
    Figure(
        write=_write,
        name="fig7",
        reads=frozenset({"dataset", "model", "class", "n_images"}),
        title="Fig. 7: long tail",
        inputs=_inputs,
        params=lambda ctx: {"choice": ctx.choice.as_dict()},
        chooses_run=True,
        n_images=4,
        paper={"loaders": ("mnist",), "class": "2", "detectors": ("panda", "knn")},
    )
)
