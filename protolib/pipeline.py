"""The study's stages, one function per Snakemake rule; rules and scripts only pass paths.

Each function reads its inputs, computes, and writes its outputs atomically with the config
values they came from (``config`` key of every JSON/NPZ), so any table traces back to them.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from protolib import integrity, io
from protolib.checks import (
    check_finite,
    check_named,
    check_subset_ids,
    check_subset_size,
    read_scores,
    read_subset,
)
from protolib.config import manual_lists, transfer_class_pairs, transfer_name
from protolib.data import ImageDataset, load_dataset
from protolib.data.base import SPLIT_PROTOCOLS, class_list
from protolib.data.splits import Split, load_split, one_vs_rest_split, save_split
from protolib.device import resolve_device
from protolib.metrics import auroc, rowwise_auroc
from protolib.models import make_detector
from protolib.models.backbones import FEATURE_DEFAULTS, feature_key, make_backbone
from protolib.models.base import detector_uses_features
from protolib.models.precision import configure_run
from protolib.scoring import Inputs, fit_and_score, fit_and_score_across, fit_and_score_each, single_sample_scores
from protolib.selection import SelectionContext, make_selector

FULL = "full"  # the method name of training on the whole training set (the 100 % row)


# ----------------------------------------------------------------------------- naming helpers
def classes(config: dict[str, Any], dataset: str) -> list[int]:
    """Class indices a dataset runs (known without loading the data)."""
    return class_list(config["datasets"][dataset])


def n_chunks(config: dict[str, Any], dataset: str) -> int:
    """Score jobs per class: fixed by the config when Snakemake builds the DAG, before K is known."""
    return math.ceil(config["datasets"][dataset]["candidates"] / config["scores"]["chunk_size"])


def chunk_rows(config: dict[str, Any], dataset: str, candidates: np.ndarray, chunk: int) -> np.ndarray:
    """The candidates score job ``chunk`` takes: the K candidates dealt evenly over the
    ``n_chunks`` jobs (sizes differ by at most one, none above ``scores.chunk_size``), so a K
    below ``datasets.<dataset>.candidates`` (a loader that takes every training image) leaves no
    job empty."""
    return np.array_split(candidates, n_chunks(config, dataset))[chunk]


def seeds(config: dict[str, Any], method: str) -> list[int]:
    return list(range(make_selector(method, config["selection"]).repeats()))


def selection_rng(config: dict[str, Any], cls: int, method: str, M: int, seed: int) -> np.random.Generator:
    """One independent stream per (study seed, class, method, M, repeat)."""
    return np.random.default_rng(
        np.random.SeedSequence([config.get("seed", 0), int(cls), zlib.crc32(method.encode()), int(M), int(seed)])
    )


def provenance(config: dict[str, Any], dataset: str | None = None, model: str | None = None) -> dict[str, Any]:
    """The config values a result depends on (recorded in every output file).

    In the workflow a rule passes these as ``params.settings`` (its rerun trigger: Snakemake
    reruns a job whose params changed) and the job records exactly what it was given."""
    out: dict[str, Any] = {"seed": config.get("seed", 0)}
    if dataset is not None:
        out["dataset"] = {dataset: config["datasets"][dataset]}
    if model is not None:
        out["model"] = {model: config["models"][model]}
    return out


def feature_provenance(config: dict[str, Any], dataset: str, model: str) -> dict[str, Any]:
    """What a feature cache depends on: the seed, the dataset and the model's frozen-backbone
    settings, not its detector's (a changed ``k``, or a second model sharing the cache, does not
    recompute it)."""
    model_cfg = config["models"][model]
    return {**provenance(config, dataset), "features": {k: model_cfg.get(k, v) for k, v in FEATURE_DEFAULTS.items()}}


def selection_provenance(config: dict[str, Any], dataset: str, model: str, method: str) -> dict[str, Any]:
    """What one method's subsets depend on: the run's settings and the method's own."""
    return {**provenance(config, dataset, model), "selection": {method: config["selection"].get(method, {})}}


def transfer_provenance(config: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """What a transfer entry's results depend on: the source run's and the target run's settings
    (the target's detector is the one fitted and scored)."""
    return {side: provenance(config, entry[side]["dataset"], entry[side]["model"]) for side in ("source", "target")}


# ----------------------------------------------------------------------------- device
def check_device(config: dict[str, Any], out: str | Path, *, settings: dict[str, Any]) -> None:
    """The GPU pre-flight (rule ``device_check``): resolve the device as a GPU job would, on a
    node the GPU rules' jobs would get, and record what was found; a GPU that torch cannot use
    raises :class:`~protolib.device.DeviceError` here, once, before any GPU rule's job starts."""
    io.write_json(out, {"config": settings, "device": resolve_device(config["device"])})


# ----------------------------------------------------------------------------- prepare
def prepare_dataset(
    config: dict[str, Any], dataset: str, out: str | Path, *, settings: dict[str, Any] | None = None
) -> None:
    """Read the dataset's official files once into the compact array file later rules use."""
    data = load_dataset(config["datasets"][dataset])
    if len(data) == 0:
        raise ValueError(f"datasets.{dataset}: the loader found no images")
    check_prepared(config, dataset, data)
    data.save(out, settings or provenance(config, dataset))


def check_prepared(config: dict[str, Any], dataset: str, data: ImageDataset) -> None:
    """What the config asks of the data that only its class sizes and labels decide, checked by
    the first job that knows them (prepare) rather than by ten split or select jobs later: each
    class's split can be drawn (``split.train``, ``anomalies_per_other_class``, ``candidates``
    against the class's size), manual ids are images of their class, and a model's ``k``
    neighbours fit in the whole training set (the 100 % row would use fewer without a word)."""
    models = [run["model"] for run in config.get("runs", []) if run["dataset"] == dataset]
    for cls in classes(config, dataset):
        split = _class_split(config, dataset, data, cls)
        _check_manual_ids(config, dataset, split, data)
        for model in models:
            k = config["models"][model].get("k")
            if isinstance(k, int) and k > len(split.train):
                raise ValueError(
                    f"models.{model}.k: {k} is more than the {len(split.train)} training images class "
                    f"{split.class_name!r} of {dataset} gets; at most {len(split.train)}"
                )


# ----------------------------------------------------------------------------- split
def _class_split(config: dict[str, Any], dataset: str, data: ImageDataset, cls: int) -> Split:
    """One class's split under the dataset's protocol, checked (no overlap, enough candidates for M)."""
    cfg = config["datasets"][dataset]
    idx = data.class_index(cls)
    seed = cfg["split"].get("seed", config.get("seed", 0))
    protocol = SPLIT_PROTOCOLS.get(cfg["loader"])
    if protocol is not None:
        split = protocol(data, idx, cfg, seed, dataset)
    else:
        split = _one_vs_rest(data, idx, cfg, seed, dataset)
    split.check(f"{dataset}/{data.class_names[idx]}")
    _check_chunks(config, dataset, split)
    largest_M = max(config.get("selection", {}).get("M") or [1])
    if len(split.candidates) < largest_M:
        raise ValueError(
            f"datasets.{dataset}.split.train: class {data.class_names[idx]!r} gets {len(split.train)} training "
            f"images ({len(split.candidates)} candidates), fewer than the largest selection.M = {largest_M}; "
            "raise split.train or lower M"
        )
    return split


def _check_chunks(config: dict[str, Any], dataset: str, split: Split) -> None:
    """Every score job gets at least one candidate: the job count comes from the config's
    ``candidates``, K from the class (a loader that takes every training image when more are asked)."""
    jobs, k, size = n_chunks(config, dataset), len(split.candidates), config["scores"]["chunk_size"]
    if jobs > k:
        raise ValueError(
            f"datasets.{dataset}.candidates: {config['datasets'][dataset]['candidates']} makes {jobs} score jobs "
            f"(scores.chunk_size = {size}), but class {split.class_name!r} has K = {k} candidates (all its training "
            f"images), fewer than one per job; set candidates to at most {k * size} or scores.chunk_size to at "
            f"least {math.ceil(config['datasets'][dataset]['candidates'] / k)}"
        )


def _check_manual_ids(config: dict[str, Any], dataset: str, split: Split, data: ImageDataset | None = None) -> None:
    """``selection.manual.<dataset>.<class>``: the ids a manual subset takes must be training
    images of that class (the select job would refuse them after every score job)."""
    if "manual" not in config.get("selection", {}).get("methods", ()):  # a loader's own check passes none
        return
    ids = manual_lists(config, dataset).get(split.normal_class)
    if ids is None:
        return  # the config check asks for a list for every class
    taken = ids[: max(config["selection"]["M"])]
    train = set(split.train.tolist())
    outside = [i for i in taken if i not in train]
    if outside:
        where = [f"{i} ({_whose(data, i, split.normal_class)})" for i in outside[:5]]
        raise ValueError(
            f"selection.manual.{dataset}.{split.normal_class}: ids {', '.join(where)} are not training images of class "
            f"{split.class_name!r} ({len(split.train)} training ids, in {dataset}'s split with seed {split.seed}); "
            "list training ids of the class"
        )


def _whose(data: ImageDataset | None, i: int, cls: int) -> str:
    if data is None:
        return "not a training id of the split"
    if not 0 <= i < len(data):
        return f"no such image; ids run 0..{len(data) - 1}"
    label = int(data.labels[i])
    return f"class {data.class_names[label]!r}" if label != cls else "in val or test"


def make_split(
    config: dict[str, Any],
    dataset: str,
    cls: int,
    data_path: str | Path,
    out: str | Path,
    *,
    settings: dict[str, Any] | None = None,
) -> Split:
    data = ImageDataset.load(data_path)
    split = _class_split(config, dataset, data, cls)
    save_split(split, out, settings or provenance(config, dataset), integrity.made_from(data=data_path))
    return split


def _one_vs_rest(data: ImageDataset, idx: int, cfg: dict[str, Any], seed: int, dataset: str) -> Split:
    split_cfg = cfg["split"]
    return one_vs_rest_split(
        data.labels,
        idx,
        dataset=dataset,
        class_name=data.class_names[idx],
        train=split_cfg["train"],
        anomalies_per_other_class=split_cfg["anomalies_per_other_class"],
        candidates=cfg["candidates"],
        seed=seed,
    )


# ----------------------------------------------------------------------------- features
def make_features(
    config: dict[str, Any],
    dataset: str,
    model: str,
    data_path: str | Path,
    out: str | Path,
    meta_out: str | Path,
    *,
    settings: dict[str, Any] | None = None,
) -> None:
    """Embed every image of the dataset once with the model's frozen backbone (the cache)."""
    data = ImageDataset.load(data_path)
    model_cfg = config["models"][model]
    _configure_torch(config, model_cfg)
    features = np.asarray(make_backbone(model_cfg, device=config.get("device", "auto"))(data.images), dtype=np.float32)
    check_finite(features, str(out))
    io.write_npy(out, features)
    integrity.write_json(
        meta_out,
        {
            "dataset": dataset,
            "feature_key": feature_key(model_cfg),
            **integrity.features_description(features),
            "config": settings or feature_provenance(config, dataset, model),
        },
        integrity.made_from(data=data_path),
    )


def _configure_torch(config: dict[str, Any], model_cfg: dict[str, Any]) -> None:
    """The job's torch settings (``deterministic``, cuDNN autotuning); a job on raw pixels imports
    torch for them only under ``deterministic``."""

    deterministic = bool(config.get("deterministic", False))
    if not deterministic and model_cfg.get("backbone", FEATURE_DEFAULTS["backbone"]) == "pixels":
        return

    configure_run(deterministic, resolve_device(config.get("device", "auto")))


def _detector_and_inputs(
    config: dict[str, Any], model: str, data_path: str | Path | None, features_path: str | Path | None
):
    model_cfg = config["models"][model]
    _configure_torch(config, model_cfg)
    detector = make_detector(model_cfg, device=config.get("device", "auto"))
    inputs = Inputs.load(data_path, features_path if detector_uses_features(model_cfg) else None)
    return detector, inputs


# ----------------------------------------------------------------------------- per-sample scores
def score_chunk(
    config: dict[str, Any],
    dataset: str,
    model: str,
    chunk: int,
    split_path: str | Path,
    data_path: str | Path | None,
    features_path: str | Path | None,
    out: str | Path,
    *,
    settings: dict[str, Any] | None = None,
) -> None:
    """The rows ``chunk_rows`` deals to job ``chunk`` of the single-sample score matrix of one class."""
    split = load_split(split_path)
    _check_chunks(config, dataset, split)
    rows = chunk_rows(config, dataset, split.candidates, chunk)
    detector, inputs = _detector_and_inputs(config, model, data_path, features_path)
    matrix = single_sample_scores(detector, inputs, rows, inputs, split.val_ids)
    check_finite(matrix, str(out))
    integrity.write_npz(
        out,
        integrity.made_from(split=split_path, data=data_path, features=features_path),
        scores=matrix,
        candidates=rows,
        meta={
            **_score_names(dataset, model, split),
            "chunk": chunk,
            "config": settings or provenance(config, dataset, model),
        },
    )


def _score_names(dataset: str, model: str, split: Split) -> dict[str, Any]:
    """What a score file's path names, recorded in it (checked by its readers: checks.check_named)."""
    return {"dataset": dataset, "model": model, "class": split.normal_class}


def merge_scores(
    config: dict[str, Any],
    dataset: str,
    model: str,
    split_path: str | Path,
    chunk_paths: list[str],
    out: str | Path,
    *,
    settings: dict[str, Any] | None = None,
) -> None:
    """Join the chunks into the (K, |val|) matrix and the per-sample val AUROC vector."""
    split = load_split(split_path)
    parts = [integrity.read_npz(p, "score_chunk") for p in chunk_paths]
    for path, part in zip(chunk_paths, parts):
        check_named(path, part.get("meta") or {}, "score_chunk")
        integrity.check_made_from(path, part, "split", split_path, "score_chunk")
        if part["scores"].ndim != 2 or part["scores"].shape[1] != len(split.val_ids):
            raise ValueError(
                f"{path}: score chunk has shape {part['scores'].shape}, expected (rows, {len(split.val_ids)}) "
                f"for the val set of {split_path}"
            )
        check_finite(part["scores"], str(path))
    matrix = np.concatenate([p["scores"] for p in parts])
    rows = np.concatenate([p["candidates"] for p in parts]).astype(np.int64)
    if not np.array_equal(rows, split.candidates):
        raise ValueError(f"{out}: score chunks cover other candidates than {split_path} lists")
    sample_auroc = rowwise_auroc(matrix, split.val_labels)
    integrity.write_npz(
        out,
        integrity.made_from(split=split_path, chunks=list(chunk_paths)),
        scores=matrix,
        candidates=split.candidates,
        val_ids=split.val_ids,
        val_labels=split.val_labels,
        sample_auroc=sample_auroc,
        meta={**_score_names(dataset, model, split), "config": settings or provenance(config, dataset, model)},
    )


# ----------------------------------------------------------------------------- selection
def subset_name(M: int, seed: int) -> str:
    return f"M{M}_seed{seed}"


def select_subsets(
    config: dict[str, Any],
    dataset: str,
    model: str,
    method: str,
    split_path: str | Path,
    scores_path: str | Path,
    features_path: str | Path | None,
    out_dir: str | Path,
    *,
    settings: dict[str, Any] | None = None,
) -> list[Path]:
    split = load_split(split_path)
    if method == "manual":  # checked by the prepare job too, which does not rerun when the lists change
        _check_manual_ids(config, dataset, split)
    scores = read_scores(scores_path, split, split_path)
    features = None
    if features_path:
        features = np.asarray(integrity.read_features(features_path)[split.train])
    manual_ids = manual_lists(config, dataset).get(split.normal_class)
    context = SelectionContext(
        candidates=split.candidates,
        score_matrix=scores["scores"],
        val_labels=scores["val_labels"],
        sample_auroc=scores["sample_auroc"],
        pool_ids=split.train,
        pool_features=features,
        manual_ids=manual_ids,
        train_ids=split.train,
    )
    selector = make_selector(method, config["selection"])
    sources = integrity.made_from(split=split_path, scores=scores_path, features=features_path)
    written = []
    for M in config["selection"]["M"]:
        for seed in seeds(config, method):
            result = selector.select(context, M, selection_rng(config, split.normal_class, method, M, seed))
            path = Path(out_dir) / f"{subset_name(M, seed)}.json"
            subset = {
                "dataset": dataset,
                "class": split.normal_class,
                "class_name": split.class_name,
                "model": model,
                "method": method,
                "M": M,
                "seed": seed,
                "ids": result.ids,
                "fitness": result.fitness,
                "info": result.info,
                "config": settings or selection_provenance(config, dataset, model, method),
            }
            check_subset_size(subset, path, None)  # a selector that returns another number of ids is a bug
            integrity.write_json(path, subset, sources)
            written.append(path)
    return written


# ----------------------------------------------------------------------------- evaluation
def _result(
    split: Split,
    dataset: str,
    model: str,
    method: str,
    M: int,
    seed: int,
    ids: list[int],
    test_auroc: float,
    settings: dict[str, Any],
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "class": split.normal_class,
        "class_name": split.class_name,
        "model": model,
        "method": method,
        "M": M,
        "seed": seed,
        "n_train": len(ids),
        "test_auroc": test_auroc,
        "ids": ids,
        "config": settings,
    }


def evaluate_subsets(
    config: dict[str, Any],
    dataset: str,
    model: str,
    split_path: str | Path,
    data_path: str | Path | None,
    features_path: str | Path | None,
    subset_paths: list[str],
    out_paths: list[str],
    *,
    settings: dict[str, Any] | None = None,
) -> None:
    """Fit the detector on each subset and write its test AUROC (one file per subset)."""
    split = load_split(split_path)
    detector, inputs = _detector_and_inputs(config, model, data_path, features_path)
    if len(subset_paths) != len(out_paths):
        raise ValueError(f"{len(subset_paths)} subset files but {len(out_paths)} outputs")
    subsets = [read_subset(path, split, split_path, config["selection"]["M"]) for path in subset_paths]
    inputs_made_from = integrity.made_from(split=split_path, data=data_path, features=features_path)
    all_scores = fit_and_score_each(detector, inputs, (subset["ids"] for subset in subsets), inputs, split.test_ids)
    for subset, scores, out in zip(subsets, all_scores, out_paths, strict=True):
        integrity.write_json(
            out,
            _result(
                split,
                dataset,
                model,
                subset["method"],
                subset["M"],
                subset["seed"],
                subset["ids"],
                auroc(split.test_labels, scores),
                settings or provenance(config, dataset, model),
            ),
            {**inputs_made_from, "subset": subset[integrity.FIELD]["digest"]},
        )


def evaluate_full(
    config: dict[str, Any],
    dataset: str,
    model: str,
    split_path: str | Path,
    data_path: str | Path | None,
    features_path: str | Path | None,
    out: str | Path,
    *,
    settings: dict[str, Any] | None = None,
) -> None:
    split = load_split(split_path)
    detector, inputs = _detector_and_inputs(config, model, data_path, features_path)
    scores = fit_and_score(detector, inputs, split.train, split.test_ids)
    result = _result(
        split,
        dataset,
        model,
        FULL,
        len(split.train),
        0,
        split.train.tolist(),
        auroc(split.test_labels, scores),
        settings or provenance(config, dataset, model),
    )
    integrity.write_json(out, result, integrity.made_from(split=split_path, data=data_path, features=features_path))


# ============================================================================= transfer
# Subsets found with one (dataset, model) -- the source -- evaluated with another -- the target:
# model transfer on one dataset (RD -> FAE on RSNA) and dataset transfer (RSNA -> CheXpert).
# The target's detector is fitted on the selected source images and scored on the target's test
# split. A frozen-feature detector reads the source dataset's feature cache (computed with the
# target model's backbone) for the training ids and the target dataset's cache for the test
# ids; an image detector reads the prepared images of each dataset. Besides the subsets, every
# class pair is also evaluated with the source's whole training set (method "full").
# Config: ``transfer: [{name, source: {dataset, model}, target: {dataset, model}, methods}]``.
def transfer_entries(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The configured transfer experiments of a validated config (:func:`protolib.config.validate`
    checks them), with names, methods and class pairs filled in."""
    methods_run = list(config["selection"]["methods"])
    entries = []
    for raw in config.get("transfer") or []:
        methods = list(raw.get("methods") or methods_run)
        entries.append(
            {
                "name": transfer_name(raw),
                "source": dict(raw["source"]),
                "target": dict(raw["target"]),
                "methods": [m for m in methods_run if m in methods],
                "pairs": transfer_class_pairs(config, raw["source"]["dataset"], raw["target"]["dataset"]),
            }
        )
    return entries


def transfer_entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    for entry in transfer_entries(config):
        if entry["name"] == name:
            return entry
    raise KeyError(f"no transfer entry named {name!r}")


def _transfer_inputs(
    config: dict[str, Any],
    model: str,
    source_data: str | Path | None,
    source_features: str | Path | None,
    target_data: str | Path | None,
    target_features: str | Path | None,
):
    detector, train = _detector_and_inputs(config, model, source_data, source_features)
    uses_features = train.features is not None
    same = (source_features == target_features) if uses_features else (source_data == target_data)
    test = train if same else Inputs.load(target_data, target_features if uses_features else None)
    a, b = (train.features, test.features) if uses_features else (train.images, test.images)
    if a.shape[1:] != b.shape[1:]:
        what = "features" if uses_features else "images"
        raise ValueError(
            f"transfer with model {model!r}: source {what} have shape {a.shape[1:]}, target {what} "
            f"{b.shape[1:]}; prepare both datasets at the same image size and channels"
        )
    return detector, train, test


def evaluate_transfer(
    config: dict[str, Any],
    name: str,
    source_split_path: str | Path,
    target_split_path: str | Path,
    source_data: str | Path | None,
    source_features: str | Path | None,
    target_data: str | Path | None,
    target_features: str | Path | None,
    subset_paths: list[str],
    out_paths: list[str],
    full_out: str | Path | None = None,
    *,
    settings: dict[str, Any] | None = None,
) -> None:
    """Test AUROC on the target of the target's detector fitted on each source subset (one
    output per subset) and, with ``full_out``, on the source's whole training set (method "full")."""
    entry = transfer_entry(config, name)
    settings = settings or transfer_provenance(config, entry)
    src_split, tgt_split = load_split(source_split_path), load_split(target_split_path)
    detector, train, test = _transfer_inputs(
        config, entry["target"]["model"], source_data, source_features, target_data, target_features
    )
    jobs = [
        ({**read_subset(p, src_split, source_split_path, config["selection"]["M"]), "path": p}, out)
        for p, out in zip(subset_paths, out_paths, strict=True)
    ]
    if full_out is not None:
        jobs.append(({"method": FULL, "M": len(src_split.train), "seed": 0, "ids": src_split.train.tolist()}, full_out))
    sources = integrity.made_from(
        source_split=source_split_path,
        target_split=target_split_path,
        source_data=source_data,
        source_features=source_features,
        target_data=target_data,
        target_features=target_features,
    )
    for subset, out in jobs:
        ids = check_subset_ids(subset["ids"], src_split.train, subset.get("path", out), source_split_path)
        scores = fit_and_score_across(detector, train, ids, test, tgt_split.test_ids)
        integrity.write_json(
            out,
            {
                "name": name,
                "method": subset["method"],
                "M": subset["M"],
                "seed": subset["seed"],
                "n_train": len(ids),
                "ids": ids,
                "test_auroc": auroc(tgt_split.test_labels, scores),
                "source": {**entry["source"], "class": src_split.normal_class, "class_name": src_split.class_name},
                "target": {**entry["target"], "class": tgt_split.normal_class, "class_name": tgt_split.class_name},
                "config": settings,
            },
            {**sources, **({"subset": subset[integrity.FIELD]["digest"]} if integrity.FIELD in subset else {})},
        )
