"""Report stage: evaluation / selection / score files -> every table and figure of the paper.

One writer per table and figure; each is registered, with what it reads, by its module in
``protolib/figures/builtin/`` (the ``scripts/`` entry only passes the job):

=========  ==============================================================================
table1     summary: 100 % and method × M per (dataset, model), mean over classes
table2     one run (report.table2) with a column per transfer experiment it is part of
tables     per-class tables (paper Tables 3-7), one per (dataset, model) run
fig1       one class: AUROC vs M, methods vs random ± std, dashed 100 %
fig2       every class of a run as small multiples
fig3       the first images of the greedy and the evolutionary subset, test images below
fig4       best and worst single samples per class (greedy ranking)
fig5       best and worst samples by the evolutionary ranking
fig6       transfer: subsets found on A evaluated on B, with both 100 % baselines
fig7       long tail: distances of training features to the class centre, examples
=========  ==============================================================================

Tables are made from ``evaluation.csv`` (and ``transfer/evaluation.csv``) alone; the image
figures from the subset, score, split, feature and prepared-image files they name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd

from protolib import io, plots, tables
from protolib.checks import read_result, read_scores, read_subset_record
from protolib.data import ImageDataset
from protolib.data.splits import load_split
from protolib.figures import images
from protolib.figures.registry import FIGURES
from protolib.integrity import made_from, read_features, read_table, union_of, write_table
from protolib.plugins import import_plugins

NO_TRANSFER = "no transfer experiments configured (config key `transfer`)"
TRANSFER_COLUMNS = [
    "name",
    "source_dataset",
    "source_model",
    "target_dataset",
    "target_model",
    "class",
    "class_name",
    "target_class",
    "target_class_name",
    "method",
    "M",
    "seed",
    "n_train",
    "test_auroc",
]


def write_evaluation_csv(result_paths: list[str], out: str | Path) -> pd.DataFrame:
    """``evaluation.csv`` and its description (``evaluation.json``: the digest every reader checks)."""
    frame = tables.collect(result_paths)
    write_table(
        out,
        frame.to_csv(index=False, float_format="%.8f"),
        made_from(results=list(result_paths)),
        union_of([io.read_json(p).get("config") for p in result_paths]),  # read and checked by collect
    )
    return frame


def read_evaluation(path: str | Path) -> pd.DataFrame:
    text = read_table(path, "evaluation_table")
    try:
        frame = pd.read_csv(StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: unreadable evaluation table ({err})") from err
    tables.check_class_coverage(frame, ["dataset", "model"], str(path))
    return frame


def _sources(*paths: str | Path) -> dict[str, Any]:
    return {"made_from": [Path(p).name for p in paths] if len(paths) > 1 else Path(paths[0]).name}


def _stem(first_output: str | Path) -> Path:
    return Path(first_output).with_suffix("")


# ----------------------------------------------------------------------------- tables
def write_table1(evaluation_csv: str | Path, first_output: str | Path) -> None:
    frame = read_evaluation(evaluation_csv)
    caption = (
        "Table 1. Test AUROC (%) of the detector trained on the whole training set (100 %) and on M "
        "selected images (greedy, evolutionary, GMM core-set, manual) or M random images; mean over "
        "the classes of each dataset."
    )
    tables.write_table(tables.summary(frame), _stem(first_output), caption, _sources(evaluation_csv))


def write_per_class_tables(evaluation_csv: str | Path, runs: list[tuple[str, str]], first_output: str | Path) -> None:
    frame = read_evaluation(evaluation_csv)
    folder = Path(first_output).parent
    for dataset, model in runs:
        sub = frame[(frame.dataset == dataset) & (frame.model == model)]
        if sub.empty:
            raise ValueError(f"{evaluation_csv}: no results for dataset {dataset!r} with model {model!r}")
        caption = (
            f"Per-class results, {dataset} with model {model}: test AUROC (%) per normal class of full "
            "training and of M selected or random images; 'average' is the mean over classes (Table 1)."
        )
        tables.write_table(
            tables.per_class(sub), folder / f"per_class_{dataset}_{model}", caption, _sources(evaluation_csv)
        )


def read_transfer(path: str | Path | None) -> pd.DataFrame:
    if not path:
        return pd.DataFrame(columns=TRANSFER_COLUMNS)
    try:
        frame = pd.read_csv(StringIO(read_table(path, "transfer")))
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=TRANSFER_COLUMNS)
    tables.check_class_coverage(frame, ["name"], str(path))
    return frame


def write_table2(
    evaluation_csv: str | Path,
    transfer_csv: str | Path | None,
    dataset: str,
    model: str,
    entries: list[dict[str, Any]],
    first_output: str | Path,
) -> None:
    frame = read_evaluation(evaluation_csv)
    transfer = read_transfer(transfer_csv)
    caption = (
        f"Table 2. Results for {model} on {dataset}: test AUROC (%) of full training and of M selected "
        "or random images."
    )
    if entries:
        described = "; ".join(
            f"'{tables.transfer_column_label(e)}': subsets found with {e['source']['model']} "
            f"on {e['source']['dataset']}, "
            f"detector {e['target']['model']} trained on them and tested on {e['target']['dataset']}"
            for e in entries
        )
        caption += f" Transfer columns ({described}); their 100 % row is the target trained on its own training set."
    else:
        caption += f" No transfer column: {NO_TRANSFER} for this run."
    long = tables.with_transfer(frame, transfer, dataset, model, entries)
    sources = _sources(evaluation_csv, transfer_csv) if transfer_csv else _sources(evaluation_csv)
    tables.write_table(
        long,
        _stem(first_output),
        caption,
        {**sources, "run": {"dataset": dataset, "model": model}, "transfer": [e["name"] for e in entries]},
    )


# ----------------------------------------------------------------------------- transfer
def write_transfer_csv(result_paths: list[str], baselines: list[dict[str, Any]], out: str | Path) -> pd.DataFrame:
    """One row per transfer evaluation file, plus per (entry, class) the target's own full training
    (method ``target_full``) from its evaluation file."""
    rows = []
    for path in result_paths:
        r = read_result(path)
        rows.append(
            {
                "name": r["name"],
                "source_dataset": r["source"]["dataset"],
                "source_model": r["source"]["model"],
                "target_dataset": r["target"]["dataset"],
                "target_model": r["target"]["model"],
                "class": r["source"]["class"],
                "class_name": r["source"]["class_name"],
                "target_class": r["target"]["class"],
                "target_class_name": r["target"]["class_name"],
                "method": r["method"],
                "M": r["M"],
                "seed": r["seed"],
                "n_train": r["n_train"],
                "test_auroc": r["test_auroc"],
            }
        )
    for b in baselines:
        r = read_result(b["path"])
        rows.append(
            {
                "name": b["name"],
                "source_dataset": b["source"]["dataset"],
                "source_model": b["source"]["model"],
                "target_dataset": r["dataset"],
                "target_model": r["model"],
                "class": b["class"],
                "class_name": "",
                "target_class": r["class"],
                "target_class_name": r["class_name"],
                "method": "target_full",
                "M": r["M"],
                "seed": r["seed"],
                "n_train": r["n_train"],
                "test_auroc": r["test_auroc"],
            }
        )
    frame = _sorted_with_source_names(pd.DataFrame(rows, columns=TRANSFER_COLUMNS))
    write_table(
        out,
        frame.to_csv(index=False, float_format="%.8f"),
        made_from(results=list(result_paths), baselines=[b["path"] for b in baselines]),
        union_of([io.read_json(p).get("config") for p in [*result_paths, *(b["path"] for b in baselines)]]),
    )
    return frame


def _sorted_with_source_names(frame: pd.DataFrame) -> pd.DataFrame:
    """The transfer table sorted, its ``target_full`` rows given the source class's name as the
    split files spell it (from the transfer rows)."""
    if frame.empty:
        return frame
    source_names = (
        frame[frame.method != "target_full"].drop_duplicates(["name", "class"]).set_index(["name", "class"]).class_name
    )
    fill = frame.method == "target_full"
    frame.loc[fill, "class_name"] = [
        source_names.get((n, c), "") for n, c in zip(frame.loc[fill, "name"], frame.loc[fill, "class"])
    ]
    return frame.sort_values(["name", "class", "method", "M", "seed"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- line figures
def write_fig2(
    evaluation_csv: str | Path, runs: list[tuple[str, str]], first_output: str | Path, methods: list[str] | None = None
) -> None:
    frame = read_evaluation(evaluation_csv)
    folder = Path(first_output).parent
    for dataset, model in runs:
        sub = frame[(frame.dataset == dataset) & (frame.model == model)]
        if sub.empty:
            raise ValueError(f"{evaluation_csv}: no results for dataset {dataset!r} with model {model!r}")
        plots.auroc_vs_m(
            sub,
            folder / f"fig2_{dataset}_{model}",
            methods=methods,
            title=f"{dataset}, model {model}: test AUROC vs number of training images",
        )


def write_fig1(evaluation_csv: str | Path, choice: dict[str, Any], first_output: str | Path) -> None:
    frame = read_evaluation(evaluation_csv)
    dataset, model, cls = choice["dataset"], choice["model"], choice["classes"][0]
    sub = frame[(frame.dataset == dataset) & (frame.model == model) & (frame["class"] == cls)]
    if sub.empty:
        raise ValueError(f"{evaluation_csv}: no results for {dataset}/{model} class {cls}")
    name = sub.class_name.iloc[0]
    data = plots.auroc_one_class(
        sub, _stem(first_output), choice.get("methods"), title=f"{dataset}, class {name} (model {model})"
    )
    io.write_json(
        _stem(first_output).with_suffix(".json"), {"choice": choice, "curves": data, **_sources(evaluation_csv)}
    )


def write_fig6(transfer_csv: str | Path | None, entries: list[dict[str, Any]], first_output: str | Path) -> None:
    stem = _stem(first_output)
    if not entries:
        plots.placeholder(stem, f"Fig. 6 (transfer): {NO_TRANSFER}.\nAdd entries under `transfer:` to run it.")
        io.write_json(stem.with_suffix(".json"), {"placeholder": True, "message": NO_TRANSFER, "entries": []})
        return
    frame = read_transfer(transfer_csv)
    missing = [e["name"] for e in entries if e["name"] not in set(frame["name"])]
    if missing:
        raise ValueError(f"{transfer_csv}: no rows for transfer entries {missing}")
    data = plots.transfer_panels(frame, entries, stem)
    io.write_json(
        stem.with_suffix(".json"), {"placeholder": False, "entries": entries, "curves": data, **_sources(transfer_csv)}
    )


# ----------------------------------------------------------------------------- image figures
def _rel(path: str | Path, first_output: str | Path) -> str:
    """A source file as recorded in a sidecar: relative to the results folder, so the same study
    gives the same bytes wherever its results live."""
    return os.path.relpath(path, start=Path(first_output).parent.parent)


def _info(choice: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"dataset": choice["dataset"], "model": choice["model"], "choice": choice, **extra}


def write_fig3(
    data_path: str | Path,
    split_path: str | Path,
    subset_paths: dict[str, str],
    choice: dict[str, Any],
    first_output: str | Path,
) -> None:

    data = ImageDataset.load(data_path)
    split = load_split(split_path)
    subsets = {}
    for method, path in subset_paths.items():
        s = read_subset_record(path)
        subsets[method] = {
            "file": _rel(path, first_output),
            "M": s["M"],
            "seed": s["seed"],
            "ids": [int(i) for i in s["ids"]],
        }
    n = choice.get("n_images") or 5
    title = f"{choice['dataset']}, class {split.class_name} (model {choice['model']}): selected training images"
    images.fig3(
        data.images,
        subsets,
        split.test_ids,
        split.test_labels,
        n,
        _stem(first_output),
        title,
        _info(
            choice,
            **{"class": split.normal_class, "class_name": split.class_name, "split": _rel(split_path, first_output)},
        ),
    )


def write_fig4(
    data_path: str | Path, matrix_paths: list[str], choice: dict[str, Any], first_output: str | Path
) -> None:

    data = ImageDataset.load(data_path)
    per_class = []
    for cls, name, path in zip(choice["classes"], choice["class_names"], matrix_paths, strict=True):
        picked = images.pick_single_sample(read_scores(path), choice.get("n_images") or 3)
        per_class.append({"class": cls, "class_name": name, "file": _rel(path, first_output), **picked})
    title = f"{choice['dataset']} (model {choice['model']}): best and worst single training images per class"
    images.fig4(data.images, per_class, _stem(first_output), title, _info(choice))


def write_fig5(
    data_path: str | Path,
    matrix_path: str | Path,
    subset_paths: list[str],
    choice: dict[str, Any],
    first_output: str | Path,
) -> None:

    data = ImageDataset.load(data_path)
    subsets = [read_subset_record(p) for p in subset_paths]
    ranking = images.pick_evolutionary(read_scores(matrix_path), subsets, choice.get("n_images") or 8)
    name = choice["class_names"][0]
    title = f"{choice['dataset']}, class {name} (model {choice['model']}): best and worst by the evolutionary algorithm"
    images.fig5(
        data.images,
        ranking,
        _stem(first_output),
        title,
        _info(
            choice,
            **{
                "class": choice["classes"][0],
                "class_name": name,
                "scores": _rel(matrix_path, first_output),
                "subset_files": [_rel(p, first_output) for p in subset_paths],
            },
        ),
    )


def write_fig7(
    data_path: str | Path,
    split_path: str | Path,
    features_path: str | Path,
    choice: dict[str, Any],
    first_output: str | Path,
) -> None:

    data = ImageDataset.load(data_path)
    split = load_split(split_path)
    features = read_features(features_path)
    if len(features) != len(data):
        raise ValueError(f"{features_path}: {len(features)} feature rows for {len(data)} images of {data_path}")
    tail = images.pick_long_tail(features, split.train, choice.get("n_images") or 4)
    key = Path(features_path).stem
    title = (
        f"{choice['dataset']}, class {split.class_name}: distances of the {len(split.train)} training images "
        f"to the class centre ({key} features)"
    )
    images.fig7(
        data.images,
        tail,
        _stem(first_output),
        title,
        f"{key} feature units",
        _info(
            choice,
            **{
                "class": split.normal_class,
                "class_name": split.class_name,
                "features": _rel(features_path, first_output),
            },
        ),
    )


# ----------------------------------------------------------------------------- Snakemake jobs
#: rules that gather results for the tables and figures; every registered table and figure is
#: its own rule (protolib.figures.registry, workflow/rules/report.smk), and all of them run
#: scripts/report_job.py
JOBS: dict[str, Callable[[Any], Any]] = {
    "evaluation_table": lambda smk: write_evaluation_csv(list(smk.input), smk.output[0]),
    "transfer": lambda smk: write_transfer_csv(list(smk.input.results), list(smk.params.baselines), smk.output[0]),
}


def run_job(smk: Any) -> None:
    """Write the table or figure of a Snakemake job (``smk``: the script's ``snakemake`` object);
    a plugin's figure is registered by importing the config's plugins first."""
    if smk.rule in JOBS:
        JOBS[smk.rule](smk)
        return

    problems = import_plugins(dict(smk.config))
    if problems:
        raise ValueError("; ".join(problems))
    FIGURES.get(smk.rule).write(smk)
