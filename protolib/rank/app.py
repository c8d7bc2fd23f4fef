"""``rank_folder``: the steps of one ``protolib rank`` run, in order (see :mod:`protolib.rank`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from protolib.checks import InputMismatchError
from protolib.models.base import detector_uses_features
from protolib.rank.contact_sheet import draw
from protolib.rank.folders import ImageFolder, check_inputs, list_inputs, read_inputs
from protolib.rank.model import (
    build_detector,
    checked_model_config,
    embedder,
    note_weights,
    pca_components,
    resolve_device,
)
from protolib.rank.options import RankError, RankOptions, check_options, ignored_options
from protolib.rank.out_folder import SUMMARY, claimed, out_path
from protolib.rank.outputs import publish, write_summary, write_tables
from protolib.rank.ranking import Ranking, embed_folder, rank_images
from protolib.rank.result import RankResult
from protolib.rank.validation import Validation, validate

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rank_folder(
    images_dir: str | Path,
    out_dir: str | Path,
    options: RankOptions | None = None,
    *,
    log: Log | None = _stderr,
    **settings: Any,
) -> RankResult:
    """Rank the images of ``images_dir`` and write the outputs to ``out_dir``.

    The settings are a :class:`RankOptions` and/or its fields as keywords (``M=5, seed=0``, which
    override the options' values); ``log`` receives the notes and warnings (None: silent). Bad
    input raises :class:`RankError` before any compute."""
    if options is not None and not isinstance(options, RankOptions):
        raise TypeError(f"options must be a RankOptions, got {type(options).__name__}; pass settings as keywords")
    opts = replace(options, **settings) if options is not None else RankOptions(**settings)
    try:
        return _run(Path(images_dir), out_path(out_dir), opts, log or (lambda message: None))
    except InputMismatchError as err:  # non-finite features or scores
        raise RankError(str(err)) from err


def _run(images_dir: Path, out_dir: Path, opts: RankOptions, log: Log) -> RankResult:
    check_options(opts)
    ignored = ignored_options(opts)
    if ignored:
        log(f"note: {', '.join(ignored)} only matter with --val-normal/--val-anomalous; ignored in this run")
    model_cfg = checked_model_config(opts)
    size = model_cfg["image_size"]
    folders = check_inputs(images_dir, out_dir, opts)
    with claimed(out_dir) as staging:  # before any folder is listed: a bad or busy --out is refused at once
        listed = list_inputs(folders, opts, size, model_cfg["backbone"])
        # torch is imported from here on (a GPU, a network backbone), not for the errors above
        device = resolve_device(opts.device)
        note_weights(model_cfg, opts.weights, log)
        detector = build_detector(model_cfg, device)  # its weights (ImageNet's: downloaded) before any decoding
        frozen = detector_uses_features(model_cfg)
        embed = embedder(detector, frozen, model_cfg, device)
        read = read_inputs(listed, opts, log)
        train = read[0]
        n_atypical = _check_counts(train, images_dir, opts, log)
        step = model_cfg["batch_size"] * -(-1024 // model_cfg["batch_size"])  # whole network batches, as in one call
        features = embed_folder(embed, train, model_cfg["backbone"], size, device, log, step, opts.progress)
        ranking = rank_images(train, features, opts, n_atypical, device, log)
        for note in ranking.notes:
            log(f"note: {note}")
        settings = _settings(images_dir, opts, model_cfg, train, device, n_atypical, ranking, features.shape)
        validation = None
        if opts.with_val:
            validation = validate(detector, frozen, embed, read, features, ranking, opts, log)
            settings.update(validation.settings)
        return _write(out_dir, staging, read, ranking, validation, settings, opts)


def _check_counts(train: ImageFolder, images_dir: Path, opts: RankOptions, log: Log) -> int:
    """M and the folder's size agree; the number of atypical images to list."""
    n = len(train)
    if n < opts.M:
        raise RankError(f"M = {opts.M} is larger than the {n} readable images in {str(images_dir)!r}")
    if n < 2:
        raise RankError(f"only {n} readable image in {str(images_dir)!r}: ranking needs at least 2")
    if opts.n_atypical >= n:
        log(
            f"note: --n-atypical {opts.n_atypical} is not less than the {n} images; listing at most {n - 1} "
            "(the most typical image is what the others are compared with)"
        )
        return n - 1
    return opts.n_atypical


def _settings(
    images_dir: Path,
    opts: RankOptions,
    model_cfg: dict[str, Any],
    train: ImageFolder,
    device: str,
    n_atypical: int,
    ranking: Ranking,
    feature_shape: tuple[int, ...],
) -> dict[str, Any]:
    """What the outputs were made from (in every JSON output)."""
    n = len(train)
    return {
        "images_dir": str(images_dir),
        "model": opts.model,
        "backbone": model_cfg["backbone"],
        "weights": model_cfg["weights"],
        "image_size": model_cfg["image_size"],
        "mode": train.mode,
        "device": device,
        "M": opts.M,
        "n_atypical": n_atypical,
        "neighbours": min(opts.neighbours, max(n - 1, 0)),
        "coreset_exclude": ranking.exclude,
        "pca": pca_components(opts.pca, feature_shape) if opts.pca else None,
        "seed": opts.seed,
        "on_error": opts.on_error,
        "model_config": model_cfg,
        "n_images": n,
        **({"knn_index": opts.knn_index} if opts.knn_index != "flat" else {}),  # recorded when not the exact default
    }


def _write(
    out_dir: Path,
    staging: Path,
    read: list[ImageFolder],
    ranking: Ranking,
    validation: Validation | None,
    settings: dict[str, Any],
    opts: RankOptions,
) -> RankResult:
    """Every output into ``staging``, then all moved into ``out_dir`` at once, summary.json last."""
    train, names = read[0], read[0].names
    table = ranking.table.sort_values("rank", kind="stable").reset_index(drop=True)
    staged = write_tables(staging, table, names, ranking, validation, settings)
    subsets = validation.subsets if validation else {}
    val_auroc = validation.val_auroc if validation else {}
    if opts.contact_sheet:
        staged["contact_sheet"] = draw(train, ranking, subsets, val_auroc, staging / "contact_sheet.png", settings)
    outputs = publish(staging, out_dir, staged)
    outputs["summary"] = out_dir / SUMMARY
    result = RankResult(
        table=table,
        coreset=[names[i] for i in ranking.core_ids],
        atypical=[names[i] for i in ranking.atypical_ids],
        skipped=[(str(p), r) for data in read for p, r in data.skipped],
        outputs=outputs,
        settings=settings,
        subsets={m: [names[i] for i in ids] for m, ids in subsets.items()},
        val_auroc=val_auroc,
        notes=ranking.notes,
    )
    write_summary(
        result,
        [p for data in read for p in data.ignored],
        [p for data in read for p in data.hidden],
        [p for data in read for p in data.first_frame_only],
    )
    return result
