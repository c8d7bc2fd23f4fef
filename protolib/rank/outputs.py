"""The files ``protolib rank`` writes (each atomically, the JSON ones with the run's settings):
into the run's staging folder, then moved into ``--out`` together (:func:`publish`), summary.json last."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from protolib import io
from protolib.rank.out_folder import SUMMARY
from protolib.rank.ranking import Ranking
from protolib.rank.result import RankResult
from protolib.rank.validation import Validation

#: outputs that only some runs write (val folders, contact sheet): removed when a rerun does not write them
STALE_OUTPUTS = (
    "val_auroc.csv",
    "contact_sheet.png",
    "subsets/greedy.csv",
    "subsets/greedy.json",
    "subsets/evolutionary.csv",
    "subsets/evolutionary.json",
)
CORESET_FITNESS = "summed squared distance of the typical images to their nearest prototype"


def write_tables(
    out_dir: Path,
    table: pd.DataFrame,
    names: list[str],
    ranking: Ranking,
    validation: Validation | None,
    settings: dict[str, Any],
) -> dict[str, Path]:
    """ranking.csv, coreset.csv/.json, atypical.csv and, with val folders, subsets/ and val_auroc.csv."""
    M, val_auroc = settings["M"], validation.val_auroc if validation else {}
    outputs = {"ranking": out_dir / "ranking.csv"}
    io.write_text(outputs["ranking"], table.to_csv(index=False))
    by_id = table.set_index("file")
    core_frame = by_id.loc[[names[i] for i in ranking.core_ids]].reset_index()
    core_frame.insert(0, "component", np.arange(len(ranking.core_ids)))
    outputs["coreset_csv"] = out_dir / "coreset.csv"
    outputs["coreset_json"] = out_dir / "coreset.json"
    io.write_text(outputs["coreset_csv"], core_frame.to_csv(index=False))
    io.write_json(
        outputs["coreset_json"],
        {
            "method": "typical",
            "M": M,
            "files": [names[i] for i in ranking.core_ids],
            "val_auroc": val_auroc.get("typical"),
            "info": {"fitness": CORESET_FITNESS, "value": ranking.coreset_fitness},
            "settings": settings,
        },
    )
    outputs["atypical"] = out_dir / "atypical.csv"
    atypical = by_id.loc[[names[i] for i in ranking.atypical_ids]].reset_index()
    io.write_text(outputs["atypical"], atypical.to_csv(index=False))
    if validation is not None:
        outputs.update(_write_validation(out_dir, by_id, names, ranking, validation, settings))
    return outputs


def _write_validation(
    out_dir: Path,
    by_id: pd.DataFrame,
    names: list[str],
    ranking: Ranking,
    validation: Validation,
    settings: dict[str, Any],
) -> dict[str, Path]:
    """subsets/<method>.csv/.json and val_auroc.csv."""
    outputs = {}
    for method, ids in validation.subsets.items():
        outputs[method + "_csv"] = out_dir / "subsets" / f"{method}.csv"
        outputs[method + "_json"] = out_dir / "subsets" / f"{method}.json"
        io.write_text(outputs[method + "_csv"], by_id.loc[[names[i] for i in ids]].reset_index().to_csv(index=False))
        io.write_json(
            outputs[method + "_json"],
            {
                "method": method,
                "M": settings["M"],
                "files": [names[i] for i in ids],
                "val_auroc": validation.val_auroc[method],
                "info": validation.info[method],
                "settings": settings,
            },
        )
    outputs["val_auroc"] = out_dir / "val_auroc.csv"
    sizes = {**{m: len(v) for m, v in validation.subsets.items()}, "typical": len(ranking.core_ids), "all": len(names)}
    frame = pd.DataFrame([{"method": m, "images": sizes[m], "val_auroc": v} for m, v in validation.val_auroc.items()])
    io.write_text(outputs["val_auroc"], frame.to_csv(index=False))
    return outputs


def publish(staging: Path, out_dir: Path, staged: dict[str, Path]) -> dict[str, Path]:
    """Move the staged outputs into ``out_dir`` (what -> where they now are) and remove the earlier
    run's optional outputs that this run does not make. summary.json, the record of a complete
    result, is removed first and written last (:func:`write_summary`), so ``out_dir`` never holds
    one run's record beside another run's files, and a publish cut short shows: no summary.json."""
    (out_dir / SUMMARY).unlink(missing_ok=True)
    outputs = {}
    for what, path in staged.items():
        outputs[what] = out_dir / path.relative_to(staging)
        outputs[what].parent.mkdir(exist_ok=True)
        os.replace(path, outputs[what])
    remove_stale(out_dir, outputs)
    return outputs


def remove_stale(out_dir: Path, outputs: dict[str, Path]) -> None:
    """A previous run's optional outputs that this run does not make."""
    for stale in STALE_OUTPUTS:
        path = out_dir / stale
        if path not in outputs.values() and path.is_file():
            path.unlink()


def write_summary(
    result: RankResult, ignored: list[Path], hidden: Sequence[Path] = (), first_frame_only: Sequence[Path] = ()
) -> None:
    """summary.json: settings, every output, skipped, ignored and hidden files (every file of the
    folders not ranked is listed), the chosen files, val AUROCs."""
    notes = {"notes": result.notes} if result.notes else {}  # ties the distances do not separate
    io.write_json(
        result.outputs["summary"],
        {
            **notes,
            "settings": result.settings,
            "outputs": {k: str(v) for k, v in result.outputs.items()},
            "skipped": [{"file": f, "reason": r} for f, r in result.skipped],
            "ignored_non_image_files": [str(p) for p in ignored],
            "hidden": [str(p) for p in hidden],  # names starting with ".": not read
            "first_frame_only": [str(p) for p in first_frame_only],  # multi-frame files: only frame 1 ranked
            "coreset": result.coreset,
            "atypical": result.atypical,
            "subsets": result.subsets,
            "val_auroc": result.val_auroc,
        },
    )
