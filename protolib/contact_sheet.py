"""Contact sheet for ``protolib rank``: the prototypical and the most atypical images, labelled."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protolib import io
from protolib.plots import PALETTE

ATYPICAL_COLOUR = "#D55E00"  # Okabe-Ito vermillion
MAX_COLUMNS = 10


@dataclass
class Section:
    """One block of tiles: a title, a frame colour and (image, line 1, line 2) per tile."""

    title: str
    colour: str
    images: np.ndarray  # uint8 (n, S, S) or (n, S, S, 3)
    names: list[str]
    captions: list[str]


def shorten(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 9] + "…" + name[-8:]


def section_colour(method: str) -> str:
    return PALETTE.get(method, "#000000")


def draw(sections: list[Section], path: str | Path, title: str = "") -> Path:
    """Draw the sections one above the other (up to 10 tiles a row) and save a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = [s for s in sections if len(s.images)]
    if not sections:
        raise ValueError("contact sheet: nothing to show")
    cols = min(MAX_COLUMNS, max(len(s.images) for s in sections))
    rows = [math.ceil(len(s.images) / cols) for s in sections]
    tile, caption, header, top = 1.25, 0.32, 0.3, (0.35 if title else 0.0)
    heights = [r * (tile + caption) + header for r in rows]
    width = max(cols * tile, 5.0)
    fig = plt.figure(figsize=(width, sum(heights) + top))
    parts = fig.subfigures(len(sections) + 1, 1, height_ratios=[top or 1e-6] + heights, squeeze=False)[:, 0]
    if title:
        parts[0].text(0.01, 0.5, title, fontsize=8, va="center", ha="left")
    for subfig, section, n_rows, height in zip(parts[1:], sections, rows, heights):
        subfig.text(0.01, 1 - 0.5 * header / height, section.title, fontsize=9, color=section.colour,
                    fontweight="bold", va="center", ha="left")
        axes = subfig.subplots(n_rows, cols, squeeze=False, gridspec_kw={
            "left": 0.01, "right": 0.01 + 0.98 * cols * tile / width, "bottom": 0.02,
            "top": 1 - (header + caption) / height, "wspace": 0.08, "hspace": caption / tile,
        })
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, image, name, text in zip(axes.flat, section.images, section.names, section.captions):
            ax.set_axis_on()
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(section.colour)
                spine.set_linewidth(2.0)
            ax.set_title(f"{shorten(name)}\n{text}", fontsize=6.5, pad=2, linespacing=1.1)
    path = Path(path)
    io.save_figure(fig, path, dpi=120, metadata={"Software": None})
    plt.close(fig)
    return path
