"""Which dataset, model and classes each figure and table shows: config ``report.<figN>``.

Resolution, per figure (done once when the workflow is parsed, so a bad value stops the run
before any job with a message naming the key):

1. what ``report.<figN>`` names (``dataset``, ``model``, ``class`` / ``classes``, ``methods``,
   ``n_images``); a dataset without a model takes the first run of that dataset, and so on;
2. otherwise the paper's choice, when a run of that dataset is configured (matched by the
   dataset's loader): Fig. 1 CIFAR10 *cat*, Fig. 3 MVTec-AD *screw*, Fig. 4 CIFAR10 (every
   class), Fig. 5 RSNA, Fig. 7 MNIST *2*, Table 2 RSNA with Reverse Distillation;
3. otherwise the first run and its first class (Fig. 4: all its classes), so that every target
   builds on the embedded default (digits / knn).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from protolib.data.base import CLASS_NAMES, class_list
from protolib.errors import ConfigError
from protolib.figures.registry import FIGURES

#: the figures that choose a run: each registered figure's ``chooses_run``, ``paper`` (its loaders,
#: preferred detectors and class), ``needs_run``, ``all_classes`` and ``n_images``
#: (:mod:`protolib.figures.registry`)


@dataclass
class Choice:
    figure: str
    dataset: str
    model: str
    classes: list[int]
    class_names: list[str]
    methods: list[str] | None = None
    n_images: int = 0
    paper_default: bool = False
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cls(self) -> int:
        return self.classes[0]

    @property
    def class_name(self) -> str:
        return self.class_names[0]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        if len(self.classes) == 1:
            return f"{self.dataset} / {self.model}, class {self.class_name}"
        return f"{self.dataset} / {self.model}, {len(self.classes)} classes"


def _names(config: dict[str, Any], dataset: str) -> list[str]:
    loader = config["datasets"][dataset].get("loader", dataset)
    return CLASS_NAMES.get(loader, [])


def _matches(name: str, wanted: str) -> bool:
    name, wanted = name.lower().strip(), str(wanted).lower().strip()
    return name == wanted or name.split(" ")[0] == wanted


def resolve_class(config: dict[str, Any], dataset: str, value: Any, key: str) -> int:
    """A class named in config (index or name) -> its index; it must be one the study runs."""
    names = _names(config, dataset)
    running = class_list(config["datasets"][dataset])
    idx = None
    if isinstance(value, int) or (
        isinstance(value, str) and value.isdigit() and not any(_matches(n, value) for n in names)
    ):
        idx = int(value)
    else:
        hits = [i for i, n in enumerate(names) if _matches(n, value)]
        idx = hits[0] if hits else None
    if idx is None or idx not in running:
        shown = ", ".join(f"{i} ({names[i]})" if i < len(names) else str(i) for i in running)
        raise ConfigError(f"{key}: {value!r} is not a class the study runs for dataset {dataset!r} (classes: {shown})")
    return idx


def _class_name(config: dict[str, Any], dataset: str, idx: int) -> str:
    names = _names(config, dataset)
    return names[idx] if idx < len(names) else str(idx)


def _pick_run(config: dict[str, Any], figure: str, user: dict[str, Any]) -> tuple[str, str, bool]:
    runs = [(r["dataset"], r["model"]) for r in config["runs"]]
    key = f"report.{figure}"
    dataset, model = user.get("dataset"), user.get("model")
    if dataset is not None and dataset not in config["datasets"]:
        raise ConfigError(f"{key}.dataset: {dataset!r} is not a key of datasets ({', '.join(config['datasets'])})")
    if model is not None and model not in config["models"]:
        raise ConfigError(f"{key}.model: {model!r} is not a key of models ({', '.join(config['models'])})")
    if dataset is not None or model is not None:
        hits = [r for r in runs if (dataset is None or r[0] == dataset) and (model is None or r[1] == model)]
        if hits:
            return hits[0][0], hits[0][1], False
        if FIGURES.get(figure).needs_run or dataset is None or model is None:
            shown = ", ".join(f"{d}/{m}" for d, m in runs)
            raise ConfigError(f"{key}: no run has dataset {dataset!r} and model {model!r} (runs: {shown})")
        return dataset, model, False
    paper = FIGURES.get(figure).paper
    loaders = paper.get("loaders", ())
    hits = [r for r in runs if config["datasets"][r[0]].get("loader", r[0]) in loaders]
    if hits:
        preferred = [r for r in hits if config["models"][r[1]]["detector"] in paper.get("detectors", ())]
        run = (preferred or hits)[0]
        return run[0], run[1], True
    return runs[0][0], runs[0][1], False


def figure_choice(config: dict[str, Any], figure: str) -> Choice:
    """What ``figure`` (a registered one that chooses a run: fig1, fig3, fig4, fig5, fig7, table2, a
    plugin's) shows; see the module docstring."""
    spec = FIGURES.get(figure)
    user = dict((config.get("report") or {}).get(figure) or {})
    key = f"report.{figure}"
    dataset, model, paper_default = _pick_run(config, figure, user)
    paper = spec.paper if paper_default else {}
    running = class_list(config["datasets"][dataset])
    note = ""
    if user.get("classes"):
        classes = [resolve_class(config, dataset, c, f"{key}.classes") for c in user["classes"]]
    elif user.get("class") is not None:
        classes = [resolve_class(config, dataset, user["class"], f"{key}.class")]
    elif spec.all_classes:
        classes = list(running)
    elif paper.get("class") is not None:
        try:
            classes = [resolve_class(config, dataset, paper["class"], key)]
        except ConfigError:
            classes = [running[0]]
            note = f"the paper's class {paper['class']!r} is not run; showing the first class"
    else:
        classes = [running[0]]
    return Choice(
        figure=figure,
        dataset=dataset,
        model=model,
        classes=classes,
        class_names=[_class_name(config, dataset, c) for c in classes],
        methods=user.get("methods"),
        n_images=int(user.get("n_images", spec.n_images)),
        paper_default=paper_default,
        note=note,
    )


def fig2_runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The (dataset, model) runs Fig. 2 shows: the first run matching ``report.fig2``'s dataset
    and model, else every run. A pair that is not a run is a ConfigError naming the key."""
    user = (config.get("report") or {}).get("fig2") or {}
    runs = [(r["dataset"], r["model"]) for r in config["runs"]]
    dataset, model = user.get("dataset"), user.get("model")
    if dataset is None and model is None:
        return runs
    hits = [r for r in runs if dataset in (None, r[0]) and model in (None, r[1])]
    if not hits:
        shown = ", ".join(f"{d}/{m}" for d, m in runs)
        wanted = " and ".join(f"{k} {v!r}" for k, v in (("dataset", dataset), ("model", model)) if v is not None)
        raise ConfigError(
            f"report.fig2: no run has {wanted}; Fig. 2 shows study results, so name one of runs ({shown})"
        )
    return hits[:1]


def subset_size(M_values: list[int], wanted: int = 5) -> int:
    """Fig. 3 shows the subsets of size 5 (the paper's), else those of the largest M."""
    return wanted if wanted in M_values else max(M_values)
