"""Tables from the evaluation files alone: Table 1 (summary), Table 2 (one run with its transfer
columns) and the per-class tables (paper Tables 3-7).

Values are test AUROC in percent. Random subsets are reported as mean ± std over the seeds (the
summary first averages over classes per seed, then takes mean and std over the seeds). Every
table is written as

* ``.csv``  long form, plain numbers: row, method, M, column, mean, std (+ mark, above_full);
  this is the file to compute with;
* ``.md`` / ``.tex`` / ``.html``  the formatted table as in the paper: per column the best value
  in bold (Markdown ``**x**``, LaTeX ``\\textbf``, HTML ``<b>``), the second best underlined
  (``<u>x</u>``, ``\\underline``), and values above the column's 100 % row marked with ``*``.

Ranking compares the values as printed (two decimals), so equal-looking values share a mark.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from protolib import io
from protolib.checks import read_result

FULL_LABEL = "100 %"
SOURCE_FULL_LABEL = "100 % (source data)"
METHOD_ORDER = ["greedy", "evolutionary", "gmm", "typical", "random", "manual"]
AVERAGE = "average"
#: methods trained on a whole training set: one row per column whatever their M (n_train) is
WHOLE_SET_METHODS = ("full", "target_full")
LEGEND = (
    "Bold: best per column; underlined: second best; *: above the column's 100 % row; random: mean ± std over seeds."
)


def collect(result_paths: list[str]) -> pd.DataFrame:
    """One row per evaluation file, sorted so the same inputs always give the same table."""
    rows = []
    for path in result_paths:
        r = read_result(path)
        rows.append(
            {
                k: r[k]
                for k in ("dataset", "model", "class", "class_name", "method", "M", "seed", "n_train", "test_auroc")
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise ValueError("no evaluation files to tabulate")
    bad = frame[(frame.test_auroc < 0) | (frame.test_auroc > 1) | frame.test_auroc.isna()]
    if not bad.empty:
        raise ValueError(f"test AUROC outside [0, 1] in {len(bad)} evaluation files")
    return frame.sort_values(["dataset", "model", "class", "method", "M", "seed"], kind="stable").reset_index(drop=True)


def check_class_coverage(frame: pd.DataFrame, by: list[str], source: str) -> None:
    """Every (method, M, seed) of a column (``by``: dataset and model, or transfer name) has a
    result for every class the column has: a mean over fewer classes would otherwise be set
    beside means over all of them, marked and compared as if alike."""
    for key, column in frame.groupby(by, sort=True):
        classes = set(column["class"].tolist())
        subset_size = column["M"].where(~column["method"].isin(WHOLE_SET_METHODS))  # theirs differs by class
        for (method, M, seed), rows in column.groupby(["method", subset_size, "seed"], sort=True, dropna=False):
            missing = sorted(classes - set(rows["class"].tolist()))
            if missing:
                name = "/".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
                shown_M = "" if pd.isna(M) else f" M = {int(M)}"
                raise ValueError(
                    f"{source}: {name}, {method}{shown_M} seed {seed} has no result for class(es) "
                    f"{', '.join(map(str, missing))} of the {len(classes)} the others have; a mean over fewer "
                    "classes would not compare with theirs (rerun the missing evaluations)"
                )


def method_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else 99, method)


def _row_order(frame: pd.DataFrame) -> list[tuple[str, int | None]]:
    methods = sorted(set(frame.method) - {"full"}, key=method_key)
    rows: list[tuple[str, int | None]] = [("full", None)] if "full" in set(frame.method) else []
    for method in methods:
        for M in sorted(frame.loc[frame.method == method, "M"].unique()):
            rows.append((method, int(M)))
    return rows


def _row_label(method: str, M: int | None) -> str:
    return FULL_LABEL if method == "full" else f"{method} {M}"


def _select(frame: pd.DataFrame, method: str, M: int | None) -> pd.DataFrame:
    return frame[frame.method == method] if M is None else frame[(frame.method == method) & (frame.M == M)]


def class_mean_over_seeds(sel: pd.DataFrame) -> tuple[float, float]:
    """Mean over classes per seed (in %), then mean and std (ddof 0; NaN for one seed) over seeds."""
    per_seed = sel.groupby("seed").test_auroc.mean() * 100.0
    std = float(per_seed.std(ddof=0)) if len(per_seed) > 1 else np.nan
    return float(per_seed.mean()), std


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Table 1: rows 100 % / method × M; columns dataset/model; mean over classes (± std over seeds)."""
    records = []
    for (dataset, model), group in frame.groupby(["dataset", "model"], sort=True):
        records += _summary_column(group, f"{dataset}/{model}")
    return pd.DataFrame(records)


def _summary_column(
    group: pd.DataFrame,
    column: str,
    rows: list[tuple[str, int | None]] | None = None,
    labels: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    records = []
    for method, M in rows or _row_order(group):
        sel = _select(group, method, M)
        if sel.empty:
            continue
        mean, std = class_mean_over_seeds(sel)
        label = (labels or {}).get(method) if M is None else None
        records.append(
            {
                "row": label or _row_label(method, M),
                "method": method,
                "M": M if M is not None else np.nan,
                "column": column,
                "mean": mean,
                "std": std,
                "n_classes": int(sel["class"].nunique()),
            }
        )
    return records


def per_class(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-class table: rows 100 % / method × M, columns class names (± std over seeds), and the
    average over classes (the Table 1 number of this run)."""
    records = []
    for method, M in _row_order(frame):
        sel = _select(frame, method, M)
        for (cls, name), group in sel.groupby(["class", "class_name"], sort=True):
            values = group.test_auroc * 100.0
            records.append(
                {
                    "row": _row_label(method, M),
                    "method": method,
                    "M": M if M is not None else np.nan,
                    "column": str(name),
                    "class": int(cls),
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=0)) if len(values) > 1 else np.nan,
                }
            )
        mean, std = class_mean_over_seeds(sel)
        records.append(
            {
                "row": _row_label(method, M),
                "method": method,
                "M": M if M is not None else np.nan,
                "column": AVERAGE,
                "class": None,
                "mean": mean,
                "std": std,
            }
        )
    long = pd.DataFrame(records)
    if not long.empty:
        long["class"] = long["class"].astype("Int64")
    return long


def transfer_column_label(entry: dict[str, Any]) -> str:
    src, tgt = entry["source"], entry["target"]
    return f"transfer {src['dataset']}/{src['model']} → {tgt['dataset']}/{tgt['model']}"


def with_transfer(
    frame: pd.DataFrame, transfer: pd.DataFrame, dataset: str, model: str, entries: list[dict[str, Any]]
) -> pd.DataFrame:
    """Table 2: one run's column, then one column per transfer entry (subsets found with the
    entry's source, detector trained and tested with its target). A transfer column's 100 % row
    is the target trained on its own whole training set; for dataset transfer, the row
    "100 % (source data)" is the target detector trained on the source's whole training set."""
    own = frame[(frame.dataset == dataset) & (frame.model == model)]
    if own.empty:
        raise ValueError(f"no evaluation results for dataset {dataset!r} with model {model!r}")
    records = _summary_column(own, f"{dataset}/{model}")
    for entry in entries:
        sub = transfer[transfer["name"] == entry["name"]] if not transfer.empty else transfer
        if sub.empty:
            raise ValueError(f"transfer evaluation has no rows for transfer entry {entry['name']!r}")
        rows: list[tuple[str, int | None]] = [("target_full", None)]
        if entry["source"]["dataset"] != entry["target"]["dataset"]:
            rows.append(("full", None))
        rows += [(m, M) for m, M in _row_order(sub) if m not in WHOLE_SET_METHODS]
        records += _summary_column(
            sub, transfer_column_label(entry), rows, labels={"target_full": FULL_LABEL, "full": SOURCE_FULL_LABEL}
        )
    return pd.DataFrame(records)


# ----------------------------------------------------------------------------- formatting
def annotate(long: pd.DataFrame) -> pd.DataFrame:
    """Add ``mark`` (best / second / "") and ``above_full`` per column, compared as printed."""
    long = long.copy()
    long["mark"] = ""
    long["above_full"] = False
    for _, group in long.groupby("column", sort=False):
        shown = group["mean"].map(as_printed)
        distinct = sorted(set(shown.dropna()), reverse=True)
        if distinct:
            long.loc[group.index[shown == distinct[0]], "mark"] = "best"
        if len(distinct) > 1:
            long.loc[group.index[shown == distinct[1]], "mark"] = "second"
        reference = group.loc[group.row == FULL_LABEL, "mean"]
        if len(reference):
            is_full = group.row.isin([FULL_LABEL, SOURCE_FULL_LABEL])
            above = (shown > as_printed(float(reference.iloc[0]))) & ~is_full
            long.loc[group.index[above], "above_full"] = True
    return long


def as_printed(value: float) -> float:
    """The value as a cell shows it (two decimals, the format's rounding, not pandas' or Python's
    ``round``, which differ from it on some halves)."""
    return float(f"{value:.2f}")


def _cell(row: pd.Series, style: str) -> str:
    number = f"{row['mean']:.2f}"
    if row["mark"] == "best":
        number = {"md": f"**{number}**", "tex": f"\\textbf{{{number}}}", "html": f"<b>{number}</b>"}[style]
    elif row["mark"] == "second":
        number = {"md": f"<u>{number}</u>", "tex": f"\\underline{{{number}}}", "html": f"<u>{number}</u>"}[style]
    if row["above_full"]:
        number += {"md": "\\*", "tex": "*", "html": "*"}[style]
    if not np.isnan(row["std"]):
        number += {"md": " ± ", "tex": " $\\pm$ ", "html": " ± "}[style] + f"{row['std']:.2f}"
    return number


def formatted(long: pd.DataFrame, style: str = "md") -> pd.DataFrame:
    """Wide table of strings in study order; "–" where a row has no value in a column."""
    long = annotate(long) if "mark" not in long else long
    text = long.apply(lambda r: _cell(r, style), axis=1)
    wide = long.assign(text=text).pivot(index="row", columns="column", values="text")
    order = list(dict.fromkeys(long.row))
    order.sort(key=lambda r: {FULL_LABEL: 0, SOURCE_FULL_LABEL: 1}.get(r, 2))  # stable: study order kept
    columns = list(dict.fromkeys(long.column))
    return wide.loc[order, columns].fillna("–")


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "→": r"$\rightarrow$",
    "–": "--",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(wide: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    cols = list(wide.columns)
    lines = [
        "\\begin{table}",
        "\\centering",
        f"\\caption{{{latex_escape(caption)}}}",
        f"\\label{{{label}}}",
        "\\begin{tabular}{l" + "r" * len(cols) + "}",
        "\\toprule",
        " & ".join([latex_escape(wide.index.name or "")] + [latex_escape(c) for c in cols]) + " \\\\",
        "\\midrule",
    ]
    for row, values in wide.iterrows():
        cells = [v if v != "–" else "--" for v in values]
        lines.append(" & ".join([latex_escape(row)] + cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def to_html(wide: pd.DataFrame, caption: str) -> str:
    """A small self-contained HTML page (the form the Snakemake report shows)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [wide.index.name or "", *wide.columns])
    body = "".join(
        "<tr><th>" + html.escape(str(row)) + "</th>" + "".join(f"<td>{v}</td>" for v in values) + "</tr>"
        for row, values in wide.iterrows()
    )
    style = (
        "body{font-family:sans-serif;font-size:14px} table{border-collapse:collapse} "
        "th,td{padding:3px 8px;border-bottom:1px solid #ccc;text-align:right;white-space:nowrap} "
        "th:first-child{text-align:left} caption{caption-side:top;text-align:left;padding:4px 0;max-width:60em}"
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><style>{style}</style></head><body>\n'
        f"<table><caption>{html.escape(caption)}</caption>\n<thead><tr>{head}</tr></thead>\n"
        f"<tbody>{body}</tbody></table>\n</body></html>\n"
    )


def write_table(long: pd.DataFrame, stem: str | Path, caption: str, provenance: dict[str, Any] | None = None) -> None:
    """``stem``.csv (numbers, long form), .md, .tex and .html (formatted), .json (provenance)."""
    stem = Path(stem)
    if long.empty:
        raise ValueError(f"{stem.name}: no results to tabulate")
    long = annotate(long)
    caption = f"{caption} {LEGEND}"
    io.write_text(stem.with_suffix(".csv"), long.to_csv(index=False, float_format="%.6f"))
    wide = formatted(long, "md")
    wide.index.name = "AUROC (%)"
    io.write_text(stem.with_suffix(".md"), f"{caption}\n\n" + wide.to_markdown() + "\n")
    wide = formatted(long, "tex")
    wide.index.name = "AUROC (%)"
    io.write_text(stem.with_suffix(".tex"), to_latex(wide, caption, f"tab:{stem.name}"))
    wide = formatted(long, "html")
    wide.index.name = "AUROC (%)"
    io.write_text(stem.with_suffix(".html"), to_html(wide, caption))
    if provenance is not None:
        io.write_json(stem.with_suffix(".json"), {**provenance, "caption": caption})
