"""Tables and figures of the report, registered by name like detectors and selectors.

Each table or figure is one module that registers a :class:`Figure`: its name (the Snakemake
rule and target), the title and caption it has in ``snakemake --report``, the paper's choice of
run and class, the files it reads (named by the results layout, never spelt out), the values its
job is given, and its writer. ``workflow/rules/report.smk`` makes one rule per registered item,
``protolib.figures.plan`` plans each once, and the config check resolves each one's
``report.<name>`` settings. A plugin module (config ``plugins``) registers its own the same way;
``tests/toy_plugins.py`` is an example.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from protolib.registry import Registry


class Paths(Protocol):
    """The results layout as a figure's inputs see it (the path helpers of
    ``workflow/rules/common.smk``): each returns the path of one file, or a list of them."""

    evaluation: str
    transfer: str

    def data(self, dataset: str) -> str: ...
    def split(self, dataset: str, cls: int) -> str: ...
    def features(self, dataset: str, model: str) -> str: ...
    def scores(self, dataset: str, model: str, cls: int) -> str: ...
    def subset(self, method: str, M: int, seed: int, dataset: str, model: str, cls: int) -> str: ...
    def subsets(self, method: str, dataset: str, model: str, cls: int) -> list[str]: ...


@dataclass
class Context:
    """What one figure is planned from: the validated config, the transfer entries by name and
    the figure's resolved choice (``None`` for a figure that does not choose a run)."""

    config: dict[str, Any]
    transfer: dict[str, dict[str, Any]]
    choice: Any = None

    @property
    def methods(self) -> list[str]:
        return list(self.config["selection"]["methods"])

    @property
    def runs(self) -> list[tuple[str, str]]:
        return [(r["dataset"], r["model"]) for r in self.config["runs"]]


@dataclass(frozen=True)
class Output:
    """One set of files of a figure or table: ``stem`` names them (``<stem>.png``, ...) and
    ``shows`` labels them in the HTML report."""

    stem: str
    shows: str


def _no_inputs(ctx: Context, paths: Paths) -> dict[str, Any]:
    return {}


def _no_params(ctx: Context) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Figure:
    """A registered table or figure. ``write(job)`` gets the Snakemake job (``job.input``,
    ``job.params``, ``job.output[0]`` the first file of the first output set)."""

    name: str
    title: str  # the report's subcategory, e.g. "Fig. 3: selected images"
    write: Callable[[Any], None]
    kind: str = "figure"  # "figure": PNG (in the report), PDF, JSON sidecar; "table": CSV, MD, TeX, JSON, HTML
    inputs: Callable[[Context, Paths], dict[str, Any]] = _no_inputs
    params: Callable[[Context], dict[str, Any]] = _no_params
    outputs: Callable[[Context], list[Output]] | None = None  # default: one set, named as the figure
    #: the figure shows one run and class (``report.<name>``, else the paper's choice, else the first run)
    chooses_run: bool = False
    #: the paper's choice: dataset ``loaders`` (any of), preferred ``detectors``, ``class`` name, ``all_classes``
    paper: dict[str, Any] = field(default_factory=dict)
    needs_run: bool = False  # its (dataset, model) must be one of ``runs`` (it shows a study result)
    all_classes: bool = False  # shows every class of its run unless ``report.<name>`` names classes
    n_images: int = 0  # images shown per group unless ``report.<name>.n_images`` says otherwise
    sidecar: bool = True  # a figure writes a JSON sidecar beside its PNG and PDF
    label: str = ""  # the report's short label (default: the title up to its colon)
    caption: str | Path | None = None  # the caption (.rst); default workflow/report/<name>.rst
    #: config problems beyond the choice (each names its key), e.g. an unknown transfer entry
    check: Callable[[dict[str, Any]], list[str]] | None = None
    #: the ``report.<name>`` keys it reads (others are refused: they would be recorded, not shown); None: any
    reads: frozenset[str] | None = None

    def output_sets(self, ctx: Context) -> list[Output]:
        if self.outputs is not None:
            return self.outputs(ctx)
        return [Output(self.name, ctx.choice.label() if ctx.choice is not None else self.name)]

    def extensions(self) -> list[str]:
        """The files of one output set, in order (the writer gets the first one's path)."""
        if self.kind == "table":
            return [".csv", ".md", ".tex", ".json", ".html"]
        return [".png", ".pdf"] + ([".json"] if self.sidecar else [])

    @property
    def shown_in_report(self) -> str:
        """The extension of the file the HTML report shows."""
        return ".html" if self.kind == "table" else ".png"

    @property
    def short_label(self) -> str:
        return self.label or self.title.split(":")[0]


FIGURES: Registry[Figure] = Registry("figure or table")

# the built-in tables and figures: one module each, imported when first looked up
for _name in ("table1", "table2", "tables", "fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7"):
    FIGURES.register_lazy(_name, f"protolib.figures.builtin.{_name}")


def register_figure(figure: Figure) -> Figure:
    """Register ``figure`` under its name (a module calls this once, at import)."""
    return FIGURES.register(figure.name)(figure)


def figures() -> list[Figure]:
    """Every registered table and figure, built-in and from plugins (imported beforehand)."""
    return [FIGURES.get(name) for name in FIGURES.names()]
