"""Fig. 6: transfer, subsets found on A evaluated on B, with both 100 % baselines (a placeholder
saying so when the config has no ``transfer`` entries)."""

from __future__ import annotations

from typing import Any

from protolib.config import transfer_name
from protolib.figures.registry import Context, Figure, Output, Paths, register_figure


def entries(ctx: Context) -> list[dict[str, Any]]:
    """``report.fig6.source`` names one entry (the config check makes sure it exists); else all."""
    source = ctx.config["report"].get("fig6", {}).get("source")
    return list(ctx.transfer.values()) if source is None else [ctx.transfer[source]]


def _inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    return {"transfer": paths.transfer if entries(ctx) else []}


def _outputs(ctx: Context) -> list[Output]:
    return [Output("fig6", ", ".join(e["name"] for e in entries(ctx)) or "no transfer experiments configured")]


def _check(config: dict[str, Any]) -> list[str]:
    source = (config.get("report") or {}).get("fig6", {}).get("source")
    names = [transfer_name(e) for e in config.get("transfer") or []]
    if source is not None and source not in names:
        return [
            f"report.fig6.source: {source!r} is not the name of a transfer entry "
            f"({', '.join(names) or 'none configured'})"
        ]
    return []


def _write(job: Any) -> None:
    from protolib import report  # pandas, matplotlib: in the job only, not when the workflow is parsed

    report.write_fig6(job.input.get("transfer") or None, list(job.params.entries), job.output[0])


FIGURE = register_figure(
    Figure(
        write=_write,
        name="fig6",
        reads=frozenset({"source"}),
        title="Fig. 6: transfer",
        inputs=_inputs,
        params=lambda ctx: {"entries": entries(ctx)},
        outputs=_outputs,
        check=_check,
    )
)
