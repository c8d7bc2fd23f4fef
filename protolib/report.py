"""Report stage: evaluation files -> evaluation.csv -> tables and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from protolib import io, plots, tables


def write_evaluation_csv(result_paths: list[str], out: str | Path, config: dict[str, Any] | None = None) -> pd.DataFrame:
    frame = tables.collect(result_paths)
    io.write_text(out, frame.to_csv(index=False, float_format="%.8f"))
    return frame


def read_evaluation(path: str | Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: unreadable evaluation table ({err})") from err


def _sources(path: str | Path) -> dict[str, Any]:
    return {"made_from": Path(path).name}


def write_table1(evaluation_csv: str | Path, first_output: str | Path) -> None:
    frame = read_evaluation(evaluation_csv)
    stem = Path(first_output).with_suffix("")
    caption = (
        "Test AUROC (%) of the detector trained on the whole training set (100 %) and on M "
        "selected images; mean over classes; random: mean ± std over seeds."
    )
    tables.write_table(tables.summary(frame), stem, caption, _sources(evaluation_csv))


def write_per_class_tables(evaluation_csv: str | Path, runs: list[tuple[str, str]], first_output: str | Path) -> None:
    frame = read_evaluation(evaluation_csv)
    folder = Path(first_output).parent
    for dataset, model in runs:
        sub = frame[(frame.dataset == dataset) & (frame.model == model)]
        caption = f"{dataset}, {model}: test AUROC (%) per normal class; random: mean ± std over seeds."
        tables.write_table(tables.per_class(sub), folder / f"per_class_{dataset}_{model}", caption, _sources(evaluation_csv))


def write_fig2(evaluation_csv: str | Path, runs: list[tuple[str, str]], first_output: str | Path,
               methods: list[str] | None = None) -> None:
    frame = read_evaluation(evaluation_csv)
    folder = Path(first_output).parent
    for dataset, model in runs:
        sub = frame[(frame.dataset == dataset) & (frame.model == model)]
        if sub.empty:
            raise ValueError(f"{evaluation_csv}: no results for dataset {dataset!r} with model {model!r}")
        plots.auroc_vs_m(sub, folder / f"fig2_{dataset}_{model}", methods=methods,
                         title=f"{dataset}, model {model}: test AUROC vs number of training images")
