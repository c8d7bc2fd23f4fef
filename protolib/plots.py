"""Line plots: test AUROC vs number of training images M (Figs. 1, 2 and 6) and placeholders.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies);
each method also has its own marker, so the plots read in greyscale too. Random subsets are
drawn as mean ± std over seeds (a band), training on the whole training set as a dashed line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from protolib import io

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = {
    "random": "#0072B2",
    "greedy": "#E69F00",
    "evolutionary": "#009E73",
    "gmm": "#CC79A7",
    "typical": "#332288",
    "manual": "#D55E00",
}
MARKERS = {"greedy": "o", "evolutionary": "s", "gmm": "^", "typical": "v", "manual": "D"}
FULL_COLOUR = "#000000"
SOURCE_FULL_COLOUR = "#56B4E9"  # Okabe-Ito sky blue
NORMAL_COLOUR = "#0072B2"
ANOMALY_COLOUR = "#D55E00"
SELECTED_METHODS = ("greedy", "evolutionary", "gmm", "typical", "manual")


def _style() -> None:
    # here: matplotlib (~0.5 s) only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # after use("Agg"): pyplot picks its backend when imported
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 10,
            "axes.titlesize": 10,
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "xtick.labelsize": 9,
            "ytick.labelsize": 9,
            "svg.hashsalt": "protolib",
            "pdf.fonttype": 42,
        }
    )


def save(fig: Any, out_stem: str | Path, dpi: int = 150) -> list[Path]:
    """PNG and PDF beside each other, atomically, without time stamps (same input, same bytes)."""
    # here: matplotlib (~0.5 s) only when a plot is drawn
    import matplotlib.pyplot as plt

    written = []
    for suffix in (".png", ".pdf"):
        path = Path(out_stem).with_suffix(suffix)
        io.save_figure(fig, path, dpi=dpi, metadata={"CreationDate": None} if suffix == ".pdf" else {"Software": None})
        written.append(path)
    plt.close(fig)
    return written


def _mean_std_over_seeds(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per M: mean over classes per seed, then mean and std (ddof 0) over seeds, in %."""
    per_seed = frame.groupby(["M", "seed"]).test_auroc.mean() * 100
    grouped = per_seed.groupby(level="M")
    return grouped.mean(), grouped.std(ddof=0).fillna(0.0)


def draw_curves(
    ax: Any,
    frame: pd.DataFrame,
    methods: list[str],
    label_prefix: str = "",
    full_methods: tuple[tuple[str, str, str, str], ...] | None = None,
) -> dict[str, Any]:
    """AUROC (%) vs M on one axis: random (mean ± std band), each method, dashed full training.

    ``full_methods``: (method, label, colour, linestyle) of the horizontal baselines; default the
    ``full`` rows as "100 % training". Returns the plotted numbers (for the sidecar JSON).
    """
    data: dict[str, Any] = {}
    rand = frame[frame.method == "random"]
    if len(rand):
        mean, std = _mean_std_over_seeds(rand)
        ax.plot(
            mean.index, mean.values, color=PALETTE["random"], marker=".", label=f"{label_prefix}random (mean ± std)"
        )
        ax.fill_between(
            mean.index,
            (mean - std).clip(upper=100),
            (mean + std).clip(upper=100),
            color=PALETTE["random"],
            alpha=0.2,
            linewidth=0,
        )
        data["random"] = {"M": mean.index.tolist(), "mean": mean.tolist(), "std": std.tolist()}
    for method in methods:
        sel = frame[frame.method == method]
        if len(sel):
            mean, _ = _mean_std_over_seeds(sel)
            ax.plot(
                mean.index,
                mean.values,
                color=PALETTE.get(method, "#000000"),
                marker=MARKERS.get(method, "x"),
                label=f"{label_prefix}{method}",
            )
            data[method] = {"M": mean.index.tolist(), "mean": mean.tolist()}
    for method, label, colour, style in full_methods or (("full", "100 % training", FULL_COLOUR, "--"),):
        full = frame[frame.method == method].test_auroc
        if len(full):
            value = float(full.mean()) * 100
            ax.axhline(value, color=colour, linestyle=style, linewidth=1.2, label=label)
            data[method] = value
    ms = sorted(int(m) for m in frame[frame.M.notna() & ~frame.method.isin(["full", "target_full"])].M.unique())
    ax.set_xscale("log")
    if ms:
        ax.set_xticks(ms, [str(m) for m in ms])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    return data


def _methods(frame: pd.DataFrame, methods: list[str] | None) -> list[str]:
    present = set(frame.method)
    return [m for m in (methods or SELECTED_METHODS) if m in present and m != "random"]


def auroc_vs_m(
    frame: pd.DataFrame, out_stem: str | Path, methods: list[str] | None = None, title: str = ""
) -> list[Path]:
    """Fig. 2: small multiples, one panel per class: AUROC (%) vs M; dashed line = full training."""
    _style()
    # here: matplotlib (~0.5 s) only when a plot is drawn
    import matplotlib.pyplot as plt

    methods = _methods(frame, methods)
    class_keys = sorted(frame[["class", "class_name"]].drop_duplicates().itertuples(index=False))
    n = len(class_keys)
    cols = min(5, n)
    rows = math.ceil(n / cols)
    width = 2.6 * cols + 0.4
    n_labels = len(methods) + 2  # + random, + 100 %
    ncol = max(1, min(n_labels, int(width // 1.9)))
    height = 2.3 * rows + 0.3 * math.ceil(n_labels / ncol) + (0.35 if title else 0.0) + 0.3
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, sharex=True, layout="constrained")
    for ax, (cls, name) in zip(axes.flat, class_keys):
        draw_curves(ax, frame[frame["class"] == cls], methods)
        ax.set_title(f"class {name}")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test AUROC (%)")
    for ax in axes[-1, :]:
        ax.set_xlabel("training images M")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, out_stem)


def auroc_one_class(
    frame: pd.DataFrame, out_stem: str | Path, methods: list[str] | None = None, title: str = ""
) -> dict[str, Any]:
    """Fig. 1: one class, AUROC (%) vs M, selected methods vs random ± std, dashed full training."""
    _style()
    # here: matplotlib (~0.5 s) only when a plot is drawn
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.4, 4.6), layout="constrained")
    data = draw_curves(ax, frame, _methods(frame, methods))
    ax.set_xlabel("training images M (log scale)")
    ax.set_ylabel("test AUROC (%)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    if title:
        ax.set_title(title)
    save(fig, out_stem)
    return data


def transfer_panels(frame: pd.DataFrame, entries: list[dict[str, Any]], out_stem: str | Path) -> dict[str, Any]:
    """Fig. 6: per transfer entry, test AUROC on the target vs M of subsets found on the source;
    black dashed: the target trained on its own whole training set; sky blue dash-dot: trained on
    the source's whole training set."""
    _style()
    # here: matplotlib (~0.5 s) only when a plot is drawn
    import matplotlib.pyplot as plt

    n = len(entries)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 4.6 * rows + 0.3), squeeze=False, layout="constrained")
    data = {}
    for ax, entry in zip(axes.flat, entries):
        sub = frame[frame["name"] == entry["name"]]
        src, tgt = entry["source"], entry["target"]
        same_dataset = src["dataset"] == tgt["dataset"]
        baselines = [("target_full", f"{tgt['dataset']}/{tgt['model']}: 100 % of {tgt['dataset']}", FULL_COLOUR, "--")]
        if not same_dataset:
            baselines.append(("full", f"{tgt['dataset']} w. 100 % of {src['dataset']}", SOURCE_FULL_COLOUR, "-."))
        prefix = f"{tgt['dataset']} w. {src['dataset']} " if not same_dataset else f"{src['model']}→{tgt['model']} "
        data[entry["name"]] = draw_curves(ax, sub, _methods(sub, entry.get("methods")), prefix, tuple(baselines))
        ax.set_title(f"found on {src['dataset']}/{src['model']}, tested on {tgt['dataset']}/{tgt['model']}", fontsize=9)
        ax.set_xlabel("training images M (log scale)")
        ax.set_ylabel(f"test AUROC on {tgt['dataset']} (%)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, fontsize=8, frameon=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    save(fig, out_stem)
    return data


def placeholder(out_stem: str | Path, message: str) -> None:
    """A figure that says why there is nothing to show (e.g. no transfer experiments configured)."""
    _style()
    # here: matplotlib (~0.5 s) only when a plot is drawn
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 2.2))
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, wrap=True, transform=ax.transAxes)
    save(fig, out_stem)
