"""Fig. 3: the first images of the greedy and the evolutionary subset, above normal and anomalous
test images (paper: MVTec-AD screw)."""

from __future__ import annotations

from typing import Any

from protolib.figures.choices import subset_size
from protolib.figures.registry import Context, Figure, Paths, register_figure


def methods(ctx: Context) -> list[str]:
    """The methods shown: those configured (the validator checks they are run), else greedy and
    evolutionary, else the first two non-random methods run."""
    run = ctx.methods
    chosen = [m for m in (ctx.choice.methods or ["greedy", "evolutionary"]) if m in run]
    return chosen or [m for m in run if m != "random"][:2] or run[:1]


def _inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    c = ctx.choice
    M = subset_size(ctx.config["selection"]["M"])
    return {
        "data": paths.data(c.dataset),
        "split": paths.split(c.dataset, c.cls),
        "subsets": [paths.subset(m, M, 0, c.dataset, c.model, c.cls) for m in methods(ctx)],
    }


def _write(job: Any) -> None:
    from protolib import report  # pandas, matplotlib: in the job only, not when the workflow is parsed

    report.write_fig3(
        job.input.data,
        job.input.split,
        dict(zip(job.params.methods, list(job.input.subsets), strict=True)),
        dict(job.params.choice),
        job.output[0],
    )


FIGURE = register_figure(
    Figure(
        write=_write,
        name="fig3",
        reads=frozenset({"dataset", "model", "class", "methods", "n_images"}),
        title="Fig. 3: selected images",
        inputs=_inputs,
        params=lambda ctx: {"choice": ctx.choice.as_dict(), "methods": methods(ctx)},
        chooses_run=True,
        needs_run=True,
        n_images=5,
        paper={"loaders": ("mvtec", "mvtec_ad", "mvtecad"), "class": "screw"},
    )
)
