"""Tables from the evaluation files alone: Table-1 summary and per-class tables.

Values are test AUROC in percent. Random subsets are reported as mean ± std over the seeds
(the summary first averages over classes per seed). Each table is written as CSV (numbers),
Markdown and LaTeX.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from protolib import io

FULL_LABEL = "100 %"
METHOD_ORDER = ["greedy", "evolutionary", "gmm", "random", "manual"]


def collect(result_paths: list[str]) -> pd.DataFrame:
    """One row per evaluation file, sorted so the same inputs always give the same table."""
    rows = []
    for path in result_paths:
        r = io.read_json(path)
        rows.append({k: r[k] for k in ("dataset", "model", "class", "class_name", "method", "M", "seed", "n_train", "test_auroc")})
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise ValueError("no evaluation files to tabulate")
    bad = frame[(frame.test_auroc < 0) | (frame.test_auroc > 1) | frame.test_auroc.isna()]
    if not bad.empty:
        raise ValueError(f"test AUROC outside [0, 1] in {len(bad)} evaluation files")
    return frame.sort_values(["dataset", "model", "class", "method", "M", "seed"], kind="stable").reset_index(drop=True)


def _row_order(frame: pd.DataFrame) -> list[tuple[str, int | None]]:
    methods = sorted(set(frame.method) - {"full"}, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else 99, m))
    rows: list[tuple[str, int | None]] = [("full", None)] if "full" in set(frame.method) else []
    for method in methods:
        for M in sorted(frame.loc[frame.method == method, "M"].unique()):
            rows.append((method, int(M)))
    return rows


def _row_label(method: str, M: int | None) -> str:
    return FULL_LABEL if method == "full" else f"{method} {M}"


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Table 1: rows 100 % / method × M; columns dataset/model; mean over classes (± std over seeds)."""
    records = []
    for (dataset, model), group in frame.groupby(["dataset", "model"], sort=True):
        column = f"{dataset}/{model}"
        for method, M in _row_order(group):
            sel = group[group.method == method] if M is None else group[(group.method == method) & (group.M == M)]
            per_seed = sel.groupby("seed").test_auroc.mean() * 100.0
            records.append({
                "row": _row_label(method, M), "method": method, "M": M if M is not None else np.nan,
                "column": column, "mean": float(per_seed.mean()),
                "std": float(per_seed.std(ddof=0)) if len(per_seed) > 1 else np.nan,
                "n_classes": int(sel["class"].nunique()),
            })
    return pd.DataFrame(records)


def per_class(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-class table: rows 100 % / method × M, columns class names (± std over seeds)."""
    records = []
    for method, M in _row_order(frame):
        sel = frame[frame.method == method] if M is None else frame[(frame.method == method) & (frame.M == M)]
        for (cls, name), group in sel.groupby(["class", "class_name"], sort=True):
            values = group.test_auroc * 100.0
            records.append({
                "row": _row_label(method, M), "method": method, "M": M if M is not None else np.nan,
                "column": str(name), "class": int(cls), "mean": float(values.mean()),
                "std": float(values.std(ddof=0)) if len(values) > 1 else np.nan,
            })
    return pd.DataFrame(records)


def _formatted(long: pd.DataFrame) -> pd.DataFrame:
    """Wide table of strings: 'mean' or 'mean ± std', rows in study order."""
    text = long.apply(lambda r: f"{r['mean']:.2f}" if np.isnan(r["std"]) else f"{r['mean']:.2f} ± {r['std']:.2f}", axis=1)
    wide = long.assign(text=text).pivot(index="row", columns="column", values="text")
    order = list(dict.fromkeys(long.row))
    columns = list(dict.fromkeys(long.column))
    return wide.loc[order, columns].fillna("–")


def write_table(long: pd.DataFrame, stem: str | Path, caption: str, provenance: dict[str, Any] | None = None) -> None:
    """``stem``.csv (numbers, long form), .md and .tex (formatted)."""
    stem = Path(stem)
    csv = long.to_csv(index=False, float_format="%.6f")
    io.write_text(stem.with_suffix(".csv"), csv)
    wide = _formatted(long)
    wide.index.name = "AUROC (%)"
    md = f"{caption}\n\n" + wide.to_markdown() + "\n"
    io.write_text(stem.with_suffix(".md"), md)
    latex = wide.to_latex(escape=True, caption=caption, label=f"tab:{stem.name}")
    io.write_text(stem.with_suffix(".tex"), latex)
    if provenance is not None:
        io.write_json(stem.with_suffix(".json"), provenance)
