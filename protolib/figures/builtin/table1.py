"""Table 1: 100 % and method × M per (dataset, model), mean over classes."""

from __future__ import annotations

from typing import Any

from protolib.figures.registry import Context, Figure, Output, Paths, register_figure


def _inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    return {"evaluation": paths.evaluation}


def _outputs(ctx: Context) -> list[Output]:
    return [Output("table1", ", ".join(f"{d}/{m}" for d, m in ctx.runs))]


def _write(job: Any) -> None:
    from protolib import report  # pandas, matplotlib: in the job only, not when the workflow is parsed

    report.write_table1(job.input.evaluation, job.output[0])


FIGURE = register_figure(
    Figure(
        write=_write,
        name="table1",
        title="Table 1: summary",
        kind="table",
        inputs=_inputs,
        outputs=_outputs,
        reads=frozenset(),
    )
)
