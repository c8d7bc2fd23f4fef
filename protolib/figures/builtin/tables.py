"""Tables 3-7: the per-class tables, one per (dataset, model) run."""

from __future__ import annotations

from typing import Any

from protolib.figures.registry import Context, Figure, Output, Paths, register_figure


def _inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    return {"evaluation": paths.evaluation}


def _outputs(ctx: Context) -> list[Output]:
    return [Output(f"per_class_{d}_{m}", f"{d}/{m}") for d, m in ctx.runs]


def _write(job: Any) -> None:
    from protolib import report  # pandas, matplotlib: in the job only, not when the workflow is parsed

    report.write_per_class_tables(job.input.evaluation, [tuple(r) for r in job.params.runs], job.output[0])


FIGURE = register_figure(
    Figure(
        write=_write,
        name="tables",
        reads=frozenset(),
        title="Tables 3-7: per class",
        label="per class",
        kind="table",
        inputs=_inputs,
        params=lambda ctx: {"runs": ctx.runs},
        outputs=_outputs,
    )
)
