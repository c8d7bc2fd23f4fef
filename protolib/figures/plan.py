"""What every table and figure of the report is made from, decided once when the workflow is
parsed: ``workflow/rules/report.smk`` makes one rule per planned item and only names its files.

Each registered figure (:mod:`protolib.figures.registry`) is planned from the validated config:
its choice of run and class (:mod:`protolib.figures.choices`) when it chooses one, then its
inputs (paths from the results layout), its job's params and its output sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protolib.figures.choices import figure_choice
from protolib.figures.registry import Context, Figure, Output, Paths, figures


@dataclass
class PlannedFigure:
    figure: Figure
    context: Context
    inputs: dict[str, Any]
    params: dict[str, Any]
    outputs: list[Output]

    @property
    def name(self) -> str:
        return self.figure.name


def plan_figure(
    figure: Figure, config: dict[str, Any], transfer: dict[str, dict[str, Any]], paths: Paths
) -> PlannedFigure:
    choice = figure_choice(config, figure.name) if figure.chooses_run else None
    ctx = Context(config=config, transfer=transfer, choice=choice)
    return PlannedFigure(figure, ctx, figure.inputs(ctx, paths), figure.params(ctx), figure.output_sets(ctx))


def plan_report(config: dict[str, Any], transfer: dict[str, dict[str, Any]], paths: Paths) -> list[PlannedFigure]:
    """Every registered table and figure, planned for a validated ``config``; ``transfer``: its
    entries by name (:func:`protolib.pipeline.transfer_entries`); ``paths``: the results layout."""
    return [plan_figure(figure, config, transfer, paths) for figure in figures()]
