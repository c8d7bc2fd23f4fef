"""Fig. 2: every class of a run as small multiples (one PNG and PDF per run, no sidecar)."""

from __future__ import annotations

from typing import Any

from protolib.errors import ConfigError
from protolib.figures.choices import fig2_runs
from protolib.figures.registry import Context, Figure, Output, Paths, register_figure


def _inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    return {"evaluation": paths.evaluation}


def _params(ctx: Context) -> dict[str, Any]:
    return {"runs": fig2_runs(ctx.config), "methods": ctx.config["report"].get("fig2", {}).get("methods")}


def _outputs(ctx: Context) -> list[Output]:
    return [Output(f"fig2_{d}_{m}", f"{d}/{m}") for d, m in fig2_runs(ctx.config)]


def _check(config: dict[str, Any]) -> list[str]:
    try:
        fig2_runs(config)
    except ConfigError as err:
        return [str(err)]
    return []


def _write(job: Any) -> None:
    from protolib import report  # pandas, matplotlib: in the job only, not when the workflow is parsed

    report.write_fig2(job.input.evaluation, [tuple(r) for r in job.params.runs], job.output[0], job.params.methods)


FIGURE = register_figure(
    Figure(
        write=_write,
        name="fig2",
        reads=frozenset({"dataset", "model", "methods"}),
        title="Fig. 2: every class",
        inputs=_inputs,
        params=_params,
        outputs=_outputs,
        sidecar=False,
        check=_check,
    )
)
