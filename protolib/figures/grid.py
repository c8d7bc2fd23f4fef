"""The one tile-grid drawer: labelled images on a grid, framed by colour, sections titled.

The image figures (paper Figs. 3, 4, 5, 7: :mod:`protolib.figures.images`) and the contact
sheet of ``protolib rank`` (:mod:`protolib.rank.contact_sheet`) are drawn here. A
:class:`Tiles` is a run of images on one row of the grid, each with a caption under it and
a title over its first image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protolib import plots

TILE_W, TILE_H = 1.3, 1.6


@dataclass
class Tiles:
    """A run of images on one row of the grid, with a title over its first image."""

    row: int
    col: int
    images: list[np.ndarray]
    captions: list[str]
    title: str = ""
    colour: str = "#000000"
    row_label: str = ""
    ids: list[int] = field(default_factory=list)


def _show(ax: Any, image: np.ndarray) -> None:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def grid_figure(
    sections: list[Tiles],
    n_rows: int,
    n_cols: int,
    title: str = "",
    header: Any = None,
    header_height: float = 0.0,
    caption_size: float = 7.5,
) -> Any:
    """The matplotlib figure of tiles on a grid; ``header(ax)`` draws an optional plot above the
    images; a title may have several lines (``\\n``), the captions two."""
    plots._style()
    # here: matplotlib (~0.5 s) only when a figure is drawn
    import matplotlib.pyplot as plt

    top = 0.45 + 0.15 * title.count("\n") if title else 0.15
    bottom = 0.45  # room for the two-line captions under the last row
    height = n_rows * TILE_H + header_height + top + bottom
    fig = plt.figure(figsize=(max(n_cols * TILE_W + 0.6, 5.0), height))
    ratios = ([header_height] if header else []) + [TILE_H] * n_rows
    grid = fig.add_gridspec(
        len(ratios),
        n_cols,
        height_ratios=ratios,
        left=0.6 / fig.get_figwidth(),
        right=0.99,
        bottom=bottom / height,
        top=1 - top / height,
        hspace=0.55 if header else 0.45,
        wspace=0.12,
    )
    offset = 1 if header else 0
    if header:
        header(fig.add_subplot(grid[0, :]))
    for section in sections:
        for j, (image, caption) in enumerate(zip(section.images, section.captions)):
            ax = fig.add_subplot(grid[section.row + offset, section.col + j])
            _show(ax, image)
            ax.set_xlabel(caption, fontsize=caption_size, labelpad=2)
            for spine in ax.spines.values():
                spine.set_edgecolor(section.colour)
                spine.set_linewidth(2.2)
            if j == 0 and section.title:
                ax.set_title(section.title, loc="left", fontsize=9, color=section.colour, fontweight="bold", pad=4)
            if j == 0 and section.row_label:
                ax.set_ylabel(section.row_label, fontsize=9, rotation=0, ha="right", va="center", labelpad=6)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.08 / height, va="top")
    return fig


def draw_grid(
    sections: list[Tiles],
    n_rows: int,
    n_cols: int,
    out_stem: str | Path,
    title: str = "",
    header: Any = None,
    header_height: float = 0.0,
) -> None:
    """Tiles on a grid, saved as PNG + PDF (:func:`grid_figure`)."""
    fig = grid_figure(sections, n_rows, n_cols, title, header, header_height)
    plots.save(fig, out_stem, dpi=150)
