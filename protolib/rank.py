"""``protolib rank``: rank the images of a folder from prototypical to long-tail, without labels.

Every image of a folder is embedded (the detector's frozen features, see below) and scored by
two label-free typicality measures:

* ``knn_sqdist``: the mean squared L2 distance to its k nearest other images in feature space
  (k = ``neighbours``, the image itself excluded; duplicates count as neighbours);
* ``core_sqdist``: the squared distance to the nearest member of the core-set (M prototypes
  covering the typical images, see below), 0 for the core-set members themselves.

``rank`` orders the images by the mean of the two ranks (ties: smaller kNN distance, then file
name); rank 1 is the most prototypical image, the last ranks are the long-tail candidates: rare
but valid images, or noisy, corrupted and mislabelled files (paper Sec. 5.2). The
``n_atypical`` last ones are listed separately.

The core-set is the ``typical`` selector's (``protolib.selection.typicality``, the one
implementation of this ranking): M prototypes covering all images but the ``coreset_exclude``
of largest kNN distance (default: the ``n_atypical`` most atypical, at most a tenth of the
images), so that no prototype is spent on an isolated outlier such as a pure-noise image.
With ``pca`` typicality and prototypes are computed on that many principal components.

Features: for a detector on frozen features (``knn``) its own embedding; for the others
(``panda``, ``patchcore``, ``fae``) the global-average-pooled features of the model's backbone
(``make_backbone``), since their own representations are trained or patch-wise.

With labelled validation folders (normal, anomalous) it also computes the paper's
single-sample scores (the detector fitted on each image alone scores every val image; for
``knn`` one exact distance matrix), the single-sample val AUROC of each image, the greedy and
evolutionary M-subsets, and the val AUROC of the detector fitted on each subset, on the
core-set and on all images. The greedy and evolutionary subsets are chosen on that same val
set, so their val AUROC is optimistic; measure them on held-out images.
"""

from __future__ import annotations

import copy
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from protolib import io
from protolib.imagefolder import ImageFolder, UnreadableImageError, read_folders

#: the paper's backbone per model, used when ``--weights`` is given without ``--backbone``
PAPER_BACKBONES = {"knn": "resnet152", "panda": "resnet152", "patchcore": "wide_resnet50_2", "fae": "resnet18"}
PIXELS_IMAGE_SIZE = 64
NETWORK_IMAGE_SIZE = 224
#: the paper's input size where it is not the ResNet default 224
PAPER_IMAGE_SIZES = {"fae": 128}
#: outputs that only some runs write (val folders, contact sheet): removed when a rerun does not write them
STALE_OUTPUTS = ("val_auroc.csv", "contact_sheet.png", "subsets/greedy.csv", "subsets/greedy.json",
                 "subsets/evolutionary.csv", "subsets/evolutionary.json")


class RankError(Exception):
    """A problem with the user's input (folder, numbers, files); the CLI exits with status 2."""


@dataclass
class RankResult:
    table: pd.DataFrame  # one row per readable image, most prototypical first
    coreset: list[str]  # file names, in component order
    atypical: list[str]  # file names, most atypical first
    skipped: list[tuple[str, str]]  # (file, reason) of unreadable images
    outputs: dict[str, Path]  # what -> file
    settings: dict[str, Any]
    subsets: dict[str, list[str]] = field(default_factory=dict)  # greedy / evolutionary -> file names
    val_auroc: dict[str, float] = field(default_factory=dict)  # method -> val AUROC

    def summary(self) -> str:
        s = self.settings
        lines = [
            f"ranked {len(self.table)} images of {s['images_dir']} ({s['mode']}, {s['image_size']}x{s['image_size']}, "
            f"model {s['model']}, features {s['backbone']}"
            + (f" [weights: {s['weights']}]" if s["backbone"] != "pixels" else "") + ")",
        ]
        for name, reason in self.skipped:
            lines.append(f"  skipped unreadable {name}: {reason}")
        out = self.outputs
        rows = [
            ("every image, most prototypical first", f"{out['ranking']}"),
            (f"core-set (typical), M = {len(self.coreset)}"
             + (f" (val AUROC {self.val_auroc['typical']:.4f})" if "typical" in self.val_auroc else ""),
             f"{out['coreset_csv']} (+ .json)"),
            (f"most atypical (long tail, corrupted), {len(self.atypical)}", f"{out['atypical']}"),
        ]
        for method, files in self.subsets.items():
            rows.append((f"{method}, M = {len(files)} (val AUROC {self.val_auroc[method]:.4f})",
                         f"{out[method + '_csv']} (+ .json)"))
        if self.val_auroc:
            rows.append((f"val AUROC per subset; all {len(self.table)} images: {self.val_auroc['all']:.4f}",
                         f"{out['val_auroc']}"))
        if "contact_sheet" in out:
            rows.append(("contact sheet", f"{out['contact_sheet']}"))
        rows.append(("settings, counts, skipped files", f"{out['summary']}"))
        width = max(len(label) for label, _ in rows)
        lines += [f"  {label:<{width}}  {where}" for label, where in rows]
        if self.subsets:
            lines.append("  (greedy and evolutionary were chosen on this val set: their val AUROC is optimistic)")
        return "\n".join(lines)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- models
def model_config(
    model: str,
    backbone: str | None = None,
    weights: str | None = None,
    image_size: int | None = None,
    batch_size: int = 64,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``models.<name>`` block the CLI options describe (defaults documented in the module)."""
    if backbone is None:
        backbone = "pixels" if model == "knn" and weights is None else PAPER_BACKBONES.get(model, "resnet18")
    if image_size is None:
        image_size = PIXELS_IMAGE_SIZE if backbone == "pixels" else PAPER_IMAGE_SIZES.get(model, NETWORK_IMAGE_SIZE)
    cfg: dict[str, Any] = {
        "detector": model,
        "backbone": backbone,
        "weights": weights if weights is not None else "none",
        "image_size": int(image_size),
        "batch_size": int(batch_size),
    }
    cfg.update(options or {})
    return cfg


def _ensure_registered(name: str) -> None:
    """Import ``protolib.models.<name>`` if it exists and has not registered itself yet."""
    from protolib.models import DETECTORS

    if name in DETECTORS or not name.isidentifier():
        return
    try:
        importlib.import_module(f"protolib.models.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"protolib.models.{name}":
            raise


def build_detector(model_cfg: dict[str, Any], device: str) -> Any:
    from protolib.models import make_detector

    _ensure_registered(model_cfg["detector"])
    try:
        return make_detector(model_cfg, device=device)
    except KeyError as err:
        raise RankError(str(err.args[0]) if err.args else str(err)) from err
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        raise RankError(f"cannot build model {model_cfg['detector']!r}: {err}") from err


def embedder(detector: Any, model_cfg: dict[str, Any], device: str) -> Callable[[np.ndarray], np.ndarray]:
    """The frozen embedding for typicality: the detector's own, else its backbone's pooled features."""
    from protolib.models import FrozenFeatureDetector, make_backbone

    if isinstance(detector, FrozenFeatureDetector):
        return detector.embed
    try:
        return make_backbone(model_cfg, device=device)
    except KeyError as err:
        raise RankError(str(err.args[0]) if err.args else str(err)) from err
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        raise RankError(f"cannot build backbone {model_cfg.get('backbone')!r}: {err}") from err


# ----------------------------------------------------------------------------- main entry
def rank_folder(
    images_dir: str | Path,
    out_dir: str | Path,
    model: str = "knn",
    backbone: str | None = None,
    weights: str | None = None,
    image_size: int | None = None,
    M: int = 10,
    n_atypical: int = 10,
    neighbours: int = 5,
    coreset_exclude: int | None = None,
    pca: int | None = None,
    val_normal: str | Path | None = None,
    val_anomalous: str | Path | None = None,
    population: int = 1000,
    generations: int = 500,
    candidates: int | None = None,
    device: str = "auto",
    batch_size: int = 64,
    seed: int = 0,
    on_error: str = "skip",
    model_options: dict[str, Any] | None = None,
    contact_sheet: bool = True,
    progress: bool | None = None,
    log: Callable[[str], None] | None = _stderr,
) -> RankResult:
    """Rank the images of ``images_dir`` and write the outputs to ``out_dir`` (see the module doc)."""
    log = log or (lambda message: None)
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    if M < 1:
        raise RankError(f"M must be at least 1, got {M}")
    if n_atypical < 0:
        raise RankError(f"--n-atypical must be 0 or more, got {n_atypical}")
    if neighbours < 1:
        raise RankError(f"--neighbours must be at least 1, got {neighbours}")
    if (val_normal is None) != (val_anomalous is None):
        raise RankError("give both --val-normal and --val-anomalous, or neither")
    with_val = val_normal is not None
    if with_val and (population < 2 or generations < 0):
        raise RankError(f"--population must be at least 2 and --generations 0 or more, got {population}, {generations}")
    if candidates is not None and candidates < 1:
        raise RankError(f"--candidates must be at least 1, got {candidates}")
    if with_val and candidates is not None and M > candidates:
        raise RankError(f"M = {M} is larger than --candidates {candidates}")
    if coreset_exclude is not None and coreset_exclude < 0:
        raise RankError(f"--coreset-exclude must be 0 or more, got {coreset_exclude}")
    if batch_size < 1:
        raise RankError(f"--batch-size must be at least 1, got {batch_size}")
    if not isinstance(seed, int) or seed < 0:
        raise RankError(f"--seed must be a whole number 0 or more, got {seed!r}")
    _check_model_name(model)

    if not (device in ("auto", "cpu") or device.startswith("cuda")):
        raise RankError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    model_cfg = model_config(model, backbone, weights, image_size, batch_size, model_options)
    size = model_cfg["image_size"]
    if not isinstance(size, int) or size < 1:
        raise RankError(f"--image-size must be a positive integer, got {size!r}")

    # ---- read
    folders = [images_dir] + ([Path(val_normal), Path(val_anomalous)] if with_val else [])
    for folder in folders:
        if not folder.exists():
            raise RankError(f"folder {str(folder)!r} does not exist")
        if not folder.is_dir():
            raise RankError(f"{str(folder)!r} is not a folder")
    _check_out_dir(out_dir, folders)
    try:
        read = read_folders(folders, size, on_error=on_error, progress=progress)
    except UnreadableImageError as err:
        raise RankError(f"{err} (use --on-error skip to leave it out)") from err
    _check_names(read)
    for folder, data in zip(folders, read):
        for path, reason in data.skipped:
            log(f"warning: skipped {str(path)!r}: {reason}")
        if data.ignored:
            shown = ", ".join(p.name for p in data.ignored[:5]) + (", ..." if len(data.ignored) > 5 else "")
            log(f"note: ignored {len(data.ignored)} file(s) in {str(folder)!r} that are not PNG, JPEG, TIFF or BMP: {shown}")
        if len(data) == 0:
            what = (f"none of its {len(data.skipped)} image files could be read" if data.skipped
                    else "it has no PNG, JPEG, TIFF or BMP files")
            raise RankError(f"no images to rank in folder {str(folder)!r}: {what}")
    train = read[0]
    n = len(train)
    if M > n:
        raise RankError(f"M = {M} is larger than the {n} readable images in {str(images_dir)!r}")
    if n < 2:
        raise RankError(f"only {n} readable image in {str(images_dir)!r}: ranking needs at least 2")
    if n_atypical > n:
        log(f"note: --n-atypical {n_atypical} is more than the {n} images; listing all of them")
        n_atypical = n

    # ---- embed and score typicality (torch is imported from here on, not for input errors)
    device = _device(device)
    if model_cfg["backbone"] == "pixels" and weights is not None:
        log(f"note: --weights {weights} is ignored: the pixels backbone has no weights")
    elif model_cfg["backbone"] != "pixels" and model_cfg["weights"] == "none":
        log(f"note: {model_cfg['backbone']} has random weights (--weights none): its features are not "
            "ImageNet features; pass --weights imagenet or a state_dict file for meaningful rankings")
    detector = build_detector(model_cfg, device)
    embed = embedder(detector, model_cfg, device)
    log(f"embedding {n} images ({train.mode}, {size}x{size}) with {model_cfg['backbone']} on {device}")
    features = np.asarray(embed(train.images))
    _check_finite(features, "image features")
    exclude_n = min(n_atypical, n // 10) if coreset_exclude is None else coreset_exclude
    exclude_n = min(exclude_n, n - M)
    log(f"choosing {M} prototypes covering the {n - exclude_n} most typical images")
    from protolib.selection.typicality import typicality

    space = features if not pca else _pca(features, pca, seed)
    found = typicality(space, M, neighbours=neighbours, exclude=exclude_n, device=device, progress=progress)
    knn, core_ids, core_dist, nearest_core = found.knn, found.core, found.core_dist, found.nearest_core
    rank = found.rank(train.names)
    order = np.argsort(rank)
    names = train.names
    atypical_ids = [int(i) for i in order[::-1][:n_atypical]]
    table = pd.DataFrame({
        "rank": rank,
        "file": names,
        "knn_sqdist": knn,
        "knn_rank": found.knn_rank(),
        "core_sqdist": core_dist,
        "core_rank": found.core_rank(),
        "nearest_core": [names[j] for j in nearest_core],
        "coreset": np.isin(np.arange(n), core_ids),
        "coreset_fit": found.typical,
        "atypical": np.isin(np.arange(n), atypical_ids),
    })

    out_dir.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, Path] = {}
    settings = {
        "images_dir": str(images_dir), "model": model, "backbone": model_cfg["backbone"],
        "weights": model_cfg["weights"], "image_size": size, "mode": train.mode, "device": device,
        "M": M, "n_atypical": n_atypical, "neighbours": min(neighbours, max(n - 1, 0)),
        "coreset_exclude": int(exclude_n), "pca": pca or None, "seed": seed, "on_error": on_error,
        "model_config": model_cfg, "n_images": n,
    }
    coreset_info = {"fitness": "summed squared distance of the typical images to their nearest prototype",
                    "value": float(core_dist[found.typical].sum())}

    # ---- validation: single-sample scores, greedy, evolutionary, val AUROC of each subset
    subsets: dict[str, list[int]] = {}
    val_auroc: dict[str, float] = {}
    subset_info: dict[str, dict[str, Any]] = {}
    if with_val:
        val_normal_data, val_anom_data = read[1], read[2]
        val_images = np.concatenate([val_normal_data.images, val_anom_data.images])
        val_labels = np.r_[np.zeros(len(val_normal_data), int), np.ones(len(val_anom_data), int)]
        val_features = np.asarray(embed(val_images)) if _frozen(detector) else None
        cand = np.arange(n)
        if candidates is not None and candidates < n:
            cand = np.sort(np.random.default_rng([seed, 1]).choice(n, size=candidates, replace=False))
        log(f"single-sample scores: {len(cand)} images x {len(val_labels)} val images")
        if val_features is not None:
            matrix = detector.score_matrix_features(features[cand], val_features)
        else:
            matrix = detector.score_matrix(train.images[cand], val_images)
        matrix = np.asarray(matrix, dtype=np.float64)
        _check_finite(matrix, "single-sample scores")
        from protolib.metrics import auroc, rowwise_auroc
        from protolib.selection import SelectionContext, make_selector

        sample_auroc = rowwise_auroc(matrix, val_labels)
        column = np.full(n, np.nan)
        column[cand] = sample_auroc
        table["val_auroc"] = column
        context = SelectionContext(candidates=cand, score_matrix=matrix, val_labels=val_labels,
                                   sample_auroc=sample_auroc, pool_ids=np.arange(n), pool_features=features)
        sel_cfg = {"evolutionary": {"population": population, "generations": generations, "fitness": "paper"}}
        for i, method in enumerate(("greedy", "evolutionary")):
            log(f"{method} selection, M = {M}")
            try:
                result = make_selector(method, sel_cfg).select(context, M, np.random.default_rng([seed, 2 + i]))
            except ValueError as err:
                raise RankError(f"{method} selection: {err}") from err
            subsets[method] = [int(j) for j in result.ids]
            subset_info[method] = {"fitness": result.fitness, **result.info}
            table[method] = np.isin(np.arange(n), subsets[method])
        evaluate = {**subsets, "typical": list(core_ids), "all": list(range(n))}
        bar = tqdm(evaluate.items(), desc="val AUROC per subset", disable=_disabled(progress), leave=False)
        for method, ids in bar:
            fitted = copy.copy(detector) if val_features is not None else copy.deepcopy(detector)
            if val_features is not None:
                scores = fitted.fit_features(features[ids]).score_features(val_features)
            else:
                scores = fitted.fit(train.images[ids]).score(val_images)
            val_auroc[method] = auroc(val_labels, scores)
        settings.update({
            "val_normal": str(val_normal), "val_anomalous": str(val_anomalous),
            "n_val_normal": len(val_normal_data), "n_val_anomalous": len(val_anom_data),
            "population": population, "generations": generations, "n_candidates": len(cand),
        })

    # ---- write
    table = table.sort_values("rank", kind="stable").reset_index(drop=True)
    outputs["ranking"] = out_dir / "ranking.csv"
    io.write_text(outputs["ranking"], table.to_csv(index=False))
    by_id = table.set_index("file")
    core_frame = by_id.loc[[names[i] for i in core_ids]].reset_index()
    core_frame.insert(0, "component", np.arange(len(core_ids)))
    outputs["coreset_csv"] = out_dir / "coreset.csv"
    outputs["coreset_json"] = out_dir / "coreset.json"
    io.write_text(outputs["coreset_csv"], core_frame.to_csv(index=False))
    io.write_json(outputs["coreset_json"], {
        "method": "typical", "M": M, "files": [names[i] for i in core_ids],
        "val_auroc": val_auroc.get("typical"), "info": coreset_info, "settings": settings,
    })
    atyp_frame = by_id.loc[[names[i] for i in atypical_ids]].reset_index()
    outputs["atypical"] = out_dir / "atypical.csv"
    io.write_text(outputs["atypical"], atyp_frame.to_csv(index=False))
    for method, ids in subsets.items():
        frame = by_id.loc[[names[i] for i in ids]].reset_index()
        outputs[method + "_csv"] = out_dir / "subsets" / f"{method}.csv"
        outputs[method + "_json"] = out_dir / "subsets" / f"{method}.json"
        io.write_text(outputs[method + "_csv"], frame.to_csv(index=False))
        io.write_json(outputs[method + "_json"], {
            "method": method, "M": M, "files": [names[i] for i in ids], "val_auroc": val_auroc[method],
            "info": subset_info[method], "settings": settings,
        })
    if val_auroc:
        outputs["val_auroc"] = out_dir / "val_auroc.csv"
        sizes = {**{m: len(v) for m, v in subsets.items()}, "typical": len(core_ids), "all": n}
        frame = pd.DataFrame([{"method": m, "images": sizes[m], "val_auroc": v} for m, v in val_auroc.items()])
        io.write_text(outputs["val_auroc"], frame.to_csv(index=False))
    if contact_sheet:
        outputs["contact_sheet"] = out_dir / "contact_sheet.png"
        _contact_sheet(train, table, core_ids, atypical_ids, subsets, val_auroc, knn, core_dist, rank,
                       outputs["contact_sheet"], settings)
    outputs["summary"] = out_dir / "summary.json"
    for stale in STALE_OUTPUTS:  # a previous run's outputs that this run does not make
        path = out_dir / stale
        if path not in outputs.values() and path.is_file():
            path.unlink()
    result = RankResult(
        table=table,
        coreset=[names[i] for i in core_ids],
        atypical=[names[i] for i in atypical_ids],
        skipped=[(str(p), r) for data in read for p, r in data.skipped],
        outputs=outputs,
        settings=settings,
        subsets={m: [names[i] for i in ids] for m, ids in subsets.items()},
        val_auroc=val_auroc,
    )
    io.write_json(outputs["summary"], {
        "settings": settings,
        "outputs": {k: str(v) for k, v in outputs.items()},
        "skipped": [{"file": f, "reason": r} for f, r in result.skipped],
        "ignored_non_image_files": [str(p) for data in read for p in data.ignored],
        "coreset": result.coreset, "atypical": result.atypical,
        "subsets": result.subsets, "val_auroc": val_auroc,
    })
    return result


def _pca(features: np.ndarray, components: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=min(components, *features.shape), random_state=seed).fit_transform(features)


def _device(device: str) -> str:
    import torch

    from protolib.models.backbones import resolve_device

    device = resolve_device(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RankError(f"--device {device}: no CUDA GPU is visible to torch (use --device cpu or auto)")
    return device


def _disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None (progress None) shows bars only on a terminal."""
    return None if progress is None else not progress


def _frozen(detector: Any) -> bool:
    from protolib.models import FrozenFeatureDetector

    return isinstance(detector, FrozenFeatureDetector)


def _check_finite(array: np.ndarray, what: str) -> None:
    from protolib.checks import InputMismatchError, check_finite

    try:
        check_finite(array, what)
    except InputMismatchError as err:
        raise RankError(str(err)) from err


# ----------------------------------------------------------------------------- input checks
def _check_model_name(model: str) -> None:
    from protolib.models import DETECTORS

    if model not in DETECTORS:
        raise RankError(f"--model: unknown model {model!r}; choose from {', '.join(DETECTORS.names())}")


def _check_out_dir(out_dir: Path, folders: list[Path]) -> None:
    """``--out`` must be a folder (or not exist), outside every input folder: input folders are
    read with their subfolders, so outputs inside one (contact_sheet.png) would be ranked next time."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RankError(f"--out {str(out_dir)!r} is an existing file; name a folder (created if missing)")
    out = out_dir.resolve()
    for folder in folders:
        folder = folder.resolve()
        if out == folder or folder in out.parents:
            raise RankError(f"--out {str(out_dir)!r} is inside the input folder {str(folder)!r}: input folders "
                            "are read with their subfolders, so the outputs (contact_sheet.png) would be ranked "
                            "next time; choose an output folder outside it")


def _check_names(read: list[ImageFolder]) -> None:
    """File names must be writable to the UTF-8 outputs (checked before any compute)."""
    for data in read:
        for path in data.paths:
            try:
                str(path).encode("utf-8")
            except UnicodeEncodeError:
                raise RankError(f"file name {path!r} is not valid UTF-8; rename it (the outputs name every "
                                "file in UTF-8 CSV and JSON)") from None


def _contact_sheet(
    data: ImageFolder, table: pd.DataFrame, core_ids: list[int], atypical_ids: list[int],
    subsets: dict[str, list[int]], val_auroc: dict[str, float], knn: np.ndarray, core_dist: np.ndarray,
    rank: np.ndarray, path: Path, settings: dict[str, Any],
) -> Path:
    from protolib.contact_sheet import ATYPICAL_COLOUR, Section, draw, section_colour

    names = data.names
    n = len(names)

    def caption(i: int) -> str:
        return f"rank {rank[i]}/{n}  kNN {knn[i]:.3g}"

    def auroc_note(method: str) -> str:
        return f", val AUROC {val_auroc[method]:.3f}" if method in val_auroc else ""

    sections = [Section(
        title=f"Prototypical: core-set (typical), M = {len(core_ids)}{auroc_note('typical')}",
        colour=section_colour("typical"), images=data.images[core_ids], names=[names[i] for i in core_ids],
        captions=[caption(i) for i in core_ids],
    )]
    for method, ids in subsets.items():
        sections.append(Section(
            title=f"{method.capitalize()} selection, M = {len(ids)}{auroc_note(method)} (chosen on val)",
            colour=section_colour(method), images=data.images[ids], names=[names[i] for i in ids],
            captions=[caption(i) for i in ids],
        ))
    sections.append(Section(
        title=f"Most atypical: long tail or corrupted, most atypical first ({len(atypical_ids)})",
        colour=ATYPICAL_COLOUR, images=data.images[atypical_ids], names=[names[i] for i in atypical_ids],
        captions=[caption(i) for i in atypical_ids],
    ))
    title = (f"{settings['images_dir']}: {n} images, model {settings['model']}, features {settings['backbone']}; "
             "kNN = mean squared distance to the nearest neighbours")
    return draw(sections, path, title=title)
