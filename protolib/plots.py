"""Figures: Fig-2-style AUROC vs M per class, selected methods against random ± std."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from protolib import io

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = {
    "random": "#0072B2",
    "greedy": "#E69F00",
    "evolutionary": "#009E73",
    "gmm": "#CC79A7",
    "manual": "#D55E00",
}
MARKERS = {"greedy": "o", "evolutionary": "s", "gmm": "^", "manual": "D"}


def _style() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 9,
                         "svg.hashsalt": "protolib", "pdf.fonttype": 42})


def auroc_vs_m(frame: pd.DataFrame, out_stem: str | Path, methods: list[str] | None = None, title: str = "") -> list[Path]:
    """Small multiples, one panel per class: AUROC (%) vs M; dashed line = full training."""
    _style()
    import matplotlib.pyplot as plt

    methods = methods or [m for m in ("greedy", "evolutionary", "gmm", "manual") if m in set(frame.method)]
    class_keys = sorted(frame[["class", "class_name"]].drop_duplicates().itertuples(index=False))
    n = len(class_keys)
    cols = min(5, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.3 * rows + 0.6), squeeze=False, sharex=True)
    for ax, (cls, name) in zip(axes.flat, class_keys):
        sub = frame[frame["class"] == cls]
        rand = sub[sub.method == "random"].groupby("M").test_auroc
        if len(rand.groups):
            mean, std = rand.mean() * 100, rand.std(ddof=0).fillna(0) * 100
            ax.plot(mean.index, mean.values, color=PALETTE["random"], marker=".", label="random (mean ± std)")
            ax.fill_between(mean.index, (mean - std).clip(upper=100), (mean + std).clip(upper=100), color=PALETTE["random"], alpha=0.2, linewidth=0)
        for method in methods:
            curve = sub[sub.method == method].groupby("M").test_auroc.mean() * 100
            if len(curve):
                ax.plot(curve.index, curve.values, color=PALETTE.get(method, "#000000"),
                        marker=MARKERS.get(method, "x"), label=method)
        full = sub[sub.method == "full"].test_auroc
        if len(full):
            ax.axhline(float(full.mean()) * 100, color="black", linestyle="--", linewidth=1, label="100 % training")
        ax.set_title(f"class {name}")
        ax.set_xscale("log")
        ms = sorted(sub[sub.method != "full"].M.unique())
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test AUROC (%)")
    for ax in axes[-1, :]:
        ax.set_xlabel("training images M")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
    if title:
        fig.suptitle(title, y=0.005, va="bottom", fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 0.93))
    written = []
    for suffix in (".png", ".pdf"):
        path = Path(out_stem).with_suffix(suffix)
        io.save_figure(fig, path, dpi=150, metadata={"CreationDate": None} if suffix == ".pdf" else {"Software": None})
        written.append(path)
    plt.close(fig)
    return written
