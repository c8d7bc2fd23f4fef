"""Table 2: one run (paper: RD on RSNA) with a column per transfer experiment it is part of."""

from __future__ import annotations

from typing import Any

from protolib.figures.registry import Context, Figure, Output, Paths, register_figure


def entries(ctx: Context) -> list[dict[str, Any]]:
    """The transfer entries whose source or target is Table 2's run."""
    run = (ctx.choice.dataset, ctx.choice.model)
    return [
        e
        for e in ctx.transfer.values()
        if (e["source"]["dataset"], e["source"]["model"]) == run
        or (e["target"]["dataset"], e["target"]["model"]) == run
    ]


def _inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    return {"evaluation": paths.evaluation, "transfer": paths.transfer if entries(ctx) else []}


def _params(ctx: Context) -> dict[str, Any]:
    return {"dataset": ctx.choice.dataset, "model": ctx.choice.model, "entries": entries(ctx)}


def _outputs(ctx: Context) -> list[Output]:
    return [Output("table2", f"{ctx.choice.dataset}/{ctx.choice.model}")]


def _write(job: Any) -> None:
    from protolib import report  # pandas, matplotlib: in the job only, not when the workflow is parsed

    report.write_table2(
        job.input.evaluation,
        job.input.get("transfer") or None,
        job.params.dataset,
        job.params.model,
        list(job.params.entries),
        job.output[0],
    )


FIGURE = register_figure(
    Figure(
        write=_write,
        name="table2",
        reads=frozenset({"dataset", "model"}),
        title="Table 2: one run with transfer",
        kind="table",
        inputs=_inputs,
        params=_params,
        outputs=_outputs,
        chooses_run=True,
        needs_run=True,
        paper={"loaders": ("rsna",), "detectors": ("rd", "reverse_distillation")},
    )
)
