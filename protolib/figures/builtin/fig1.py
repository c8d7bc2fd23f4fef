"""Fig. 1: one class, AUROC vs M, the methods against random ± std, dashed 100 %."""

from __future__ import annotations

from typing import Any

from protolib.figures.registry import Context, Figure, Paths, register_figure


def _inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    return {"evaluation": paths.evaluation}


def _write(job: Any) -> None:
    from protolib import report  # pandas, matplotlib: in the job only, not when the workflow is parsed

    report.write_fig1(job.input.evaluation, dict(job.params.choice), job.output[0])


FIGURE = register_figure(
    Figure(
        write=_write,
        name="fig1",
        reads=frozenset({"dataset", "model", "class", "methods"}),
        title="Fig. 1: one class",
        inputs=_inputs,
        params=lambda ctx: {"choice": ctx.choice.as_dict()},
        chooses_run=True,
        needs_run=True,
        paper={"loaders": ("cifar10",), "class": "cat"},
    )
)
