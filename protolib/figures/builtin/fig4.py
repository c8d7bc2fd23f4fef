"""Fig. 4: the best and worst single-sample images of each class (paper: CIFAR10, every class)."""

from __future__ import annotations

from typing import Any

from protolib.figures.registry import Context, Figure, Paths, register_figure


def _inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    c = ctx.choice
    return {"data": paths.data(c.dataset), "scores": [paths.scores(c.dataset, c.model, k) for k in c.classes]}


def _write(job: Any) -> None:
    from protolib import report  # pandas, matplotlib: in the job only, not when the workflow is parsed

    report.write_fig4(job.input.data, list(job.input.scores), dict(job.params.choice), job.output[0])


FIGURE = register_figure(
    Figure(
        write=_write,
        name="fig4",
        reads=frozenset({"dataset", "model", "class", "classes", "n_images"}),
        title="Fig. 4: best and worst single samples",
        inputs=_inputs,
        params=lambda ctx: {"choice": ctx.choice.as_dict()},
        chooses_run=True,
        needs_run=True,
        all_classes=True,
        n_images=3,
        paper={"loaders": ("cifar10",)},
    )
)
