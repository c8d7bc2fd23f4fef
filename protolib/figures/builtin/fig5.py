"""Fig. 5: the best and worst images by the evolutionary algorithm (how often a candidate is in its
subsets; paper: RSNA)."""

from __future__ import annotations

from typing import Any

from protolib.figures.registry import Context, Figure, Paths, register_figure


def _inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    c = ctx.choice
    evolutionary = "evolutionary" in ctx.methods
    return {
        "data": paths.data(c.dataset),
        "scores": paths.scores(c.dataset, c.model, c.cls),
        "subsets": paths.subsets("evolutionary", c.dataset, c.model, c.cls) if evolutionary else [],
    }


def _write(job: Any) -> None:
    from protolib import report  # pandas, matplotlib: in the job only, not when the workflow is parsed

    report.write_fig5(
        job.input.data, job.input.scores, list(job.input.get("subsets") or []), dict(job.params.choice), job.output[0]
    )


FIGURE = register_figure(
    Figure(
        write=_write,
        name="fig5",
        reads=frozenset({"dataset", "model", "class", "n_images"}),
        title="Fig. 5: evolutionary ranking",
        inputs=_inputs,
        params=lambda ctx: {"choice": ctx.choice.as_dict()},
        chooses_run=True,
        needs_run=True,
        n_images=8,
        paper={"loaders": ("rsna",)},
    )
)
