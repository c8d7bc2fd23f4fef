"""What every table and figure of the report is made from, decided once when the workflow is
parsed (``workflow/rules/report.smk`` only names the files this plan lists).

Per-figure choices of dataset, model and class are :mod:`protolib.figures.choices`; this module
adds what the rules need beyond them: which runs Fig. 2 draws, which methods and subset size
Fig. 3 shows, whether Fig. 5 has evolutionary subsets to rank by, and which transfer entries
Fig. 6 and Table 2 show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protolib.figures.choices import Choice, fig2_runs, figure_choice, subset_size

#: the figures and tables whose dataset / model / class come from :func:`figure_choice`
CHOSEN = ("fig1", "fig3", "fig4", "fig5", "fig7", "table2")


@dataclass
class ReportPlan:
    choice: dict[str, Choice]
    fig2_runs: list[tuple[str, str]]
    fig3_methods: list[str]
    fig3_M: int
    fig5_evolutionary: bool
    fig6_entries: list[dict[str, Any]]
    table2_entries: list[dict[str, Any]]


def _methods_for(wanted: list[str] | None, fallback: list[str], methods: list[str]) -> list[str]:
    """The methods a figure shows: those configured (the validator checks they are run), else
    ``fallback``, else the first two non-random methods run."""
    chosen = [m for m in (wanted or fallback) if m in methods]
    return chosen or [m for m in methods if m != "random"][:2] or methods[:1]


def _fig6_entries(config: dict[str, Any], transfer: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``report.fig6.source`` names one entry (the validator checks it exists); else all."""
    source = config["report"].get("fig6", {}).get("source")
    return list(transfer.values()) if source is None else [transfer[source]]


def _table2_entries(table2: Choice, transfer: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The transfer entries whose source or target is Table 2's run."""
    run = (table2.dataset, table2.model)
    return [
        e for e in transfer.values()
        if (e["source"]["dataset"], e["source"]["model"]) == run or (e["target"]["dataset"], e["target"]["model"]) == run
    ]


def plan_report(config: dict[str, Any], transfer: dict[str, dict[str, Any]]) -> ReportPlan:
    """The report's plan for a validated ``config``; ``transfer``: entries by name
    (:func:`protolib.pipeline.transfer_entries`)."""
    methods = list(config["selection"]["methods"])
    choice = {f: figure_choice(config, f) for f in CHOSEN}
    return ReportPlan(
        choice=choice,
        fig2_runs=fig2_runs(config),
        fig3_methods=_methods_for(choice["fig3"].methods, ["greedy", "evolutionary"], methods),
        fig3_M=subset_size(config["selection"]["M"]),
        fig5_evolutionary="evolutionary" in methods,
        fig6_entries=_fig6_entries(config, transfer),
        table2_entries=_table2_entries(choice["table2"], transfer),
    )
