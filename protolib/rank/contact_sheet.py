"""The contact sheet of ``protolib rank``: the core-set, the greedy and evolutionary subsets and
the most atypical images, each labelled with file name, rank and kNN distance. Drawn by the
figures' one tile-grid drawer (:mod:`protolib.figures.grid`), up to 10 tiles a row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protolib import io, plots
from protolib.figures.grid import Tiles, grid_figure
from protolib.rank.folders import ImageFolder
from protolib.rank.ranking import Ranking

MAX_COLUMNS = 10
MIN_COLUMNS = 6  # room for the titles of a sheet of few images


def shorten(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 9] + "…" + name[-8:]


def sections(
    data: ImageFolder, ranking: Ranking, subsets: dict[str, list[int]], val_auroc: dict[str, float]
) -> list[tuple[str, str, list[int]]]:
    """(title, frame colour, image ids) of each block, top to bottom."""

    def note(method: str) -> str:
        return f", val AUROC {val_auroc[method]:.3f}" if method in val_auroc else ""

    core = [int(i) for i in ranking.core_ids]
    blocks = [
        (
            f"Prototypical: core-set (typical), M = {len(core)}{note('typical')}",
            plots.PALETTE.get("typical", "#000000"),
            core,
        )
    ]
    for method, ids in subsets.items():
        blocks.append(
            (
                f"{method.capitalize()} selection, M = {len(ids)}{note(method)} (chosen on val)",
                plots.PALETTE.get(method, "#000000"),
                list(ids),
            )
        )
    blocks.append(
        (
            f"Most atypical: long tail or corrupted, most atypical first ({len(ranking.atypical_ids)})",
            plots.ANOMALY_COLOUR,
            list(ranking.atypical_ids),
        )
    )
    return [block for block in blocks if block[2]]


def draw(
    data: ImageFolder,
    ranking: Ranking,
    subsets: dict[str, list[int]],
    val_auroc: dict[str, float],
    path: Path,
    settings: dict[str, Any],
) -> Path:
    """The blocks one above the other, each wrapped at 10 tiles a row; a PNG written atomically."""
    # here: matplotlib (~0.5 s) only when the contact sheet is drawn
    import matplotlib.pyplot as plt

    blocks = sections(data, ranking, subsets, val_auroc)
    if not blocks:
        raise ValueError("contact sheet: nothing to show")
    names, n = data.names, len(data)
    cols = max(MIN_COLUMNS, min(MAX_COLUMNS, max(len(ids) for _, _, ids in blocks)))
    tiles: list[Tiles] = []
    for title, colour, ids in blocks:
        for start in range(0, len(ids), cols):
            row = ids[start : start + cols]
            captions = [f"{shorten(names[i])}\nrank {ranking.rank[i]}/{n}  kNN {ranking.knn[i]:.3g}" for i in row]
            tiles.append(
                Tiles(
                    len(tiles),
                    0,
                    [data.images[i] for i in row],
                    captions,
                    title=title if start == 0 else "",
                    colour=colour,
                    ids=row,
                )
            )
    title = (
        f"{settings['images_dir']}: {n} images, model {settings['model']}, features {settings['backbone']};\n"
        "kNN = mean squared distance to the nearest neighbours"
    )
    fig = grid_figure(tiles, len(tiles), cols, title=title, caption_size=6.5)
    io.save_figure(fig, path, dpi=120, metadata={"Software": None})
    plt.close(fig)
    return Path(path)
