"""The image figures (paper Figs. 3, 4, 5 and 7): which images, and drawing them (with the one
tile-grid drawer, :mod:`protolib.figures.grid`).

Every figure shows dataset images by id, and the ids come from the study's own files: subset
files (``results/subsets``), the single-sample score file (``matrix.npz``), the split and the
feature cache. The ``pick_*`` functions compute which ids a figure shows; the ``figN`` functions
draw them and write a sidecar JSON (``<figure>.json``) listing every id shown, with the numbers
printed under each image.

Definitions
-----------
* Fig. 4 (best / worst single samples, the greedy ranking): candidates ordered by the val AUROC
  of the detector trained on that image alone (``sample_auroc`` of ``matrix.npz``); best = the
  top ``n``, worst = the bottom ``n`` (shown worst first).
* Fig. 5 (best / worst by the evolutionary algorithm): candidates ordered by (1) how many
  evolutionary subsets of the class, over every M (and seed), contain the image, then (2) the
  paper's evolutionary fitness (Eq. 3) of the image alone, f({i}) = sum_k y_k s(i, k), with
  y = +1 for anomalous and -1 for normal val images. Best = the top ``n``: the images the
  algorithm keeps choosing; worst = the bottom ``n``: never chosen and rated lowest by its
  objective (shown worst first).
* Fig. 7 (long tail): every training image of the class embedded by the model's frozen
  backbone (the feature cache); centre = the mean training feature; distance = Euclidean
  distance to it. Centre examples = the ``n`` closest images, tail examples = the ``n`` farthest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from protolib import io, plots
from protolib.figures.grid import Tiles, draw_grid


# ----------------------------------------------------------------------------- picking ids
def spaced(ids: np.ndarray, n: int) -> list[int]:
    """``n`` ids evenly spaced through ``ids`` (deterministic; mixes anomaly classes)."""
    ids = np.asarray(ids)
    if len(ids) == 0 or n <= 0:
        return []
    pos = np.unique(np.linspace(0, len(ids) - 1, min(n, len(ids))).round().astype(int))
    return [int(i) for i in ids[pos]]


def pick_single_sample(matrix: dict[str, Any], n: int) -> dict[str, Any]:
    """Fig. 4: best and worst candidates by single-sample val AUROC."""
    auroc = np.asarray(matrix["sample_auroc"], dtype=float)
    cands = np.asarray(matrix["candidates"], dtype=np.int64)
    n = max(1, min(n, len(cands) // 2)) if len(cands) > 1 else len(cands)
    order = np.argsort(-auroc, kind="stable")
    best, worst = order[:n], order[::-1][:n]
    return {
        "best": {"ids": cands[best].tolist(), "sample_auroc": auroc[best].tolist()},
        "worst": {"ids": cands[worst].tolist(), "sample_auroc": auroc[worst].tolist()},
    }


def single_sample_fitness(matrix: dict[str, Any]) -> np.ndarray:
    """Eq. 3 of the paper for a subset of one image: sum_k y_k s(i, k), y = +1 anomalous, -1 normal."""
    y = np.where(np.asarray(matrix["val_labels"]) > 0, 1.0, -1.0)
    return np.asarray(matrix["scores"], dtype=float) @ y


def pick_evolutionary(matrix: dict[str, Any], subsets: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Fig. 5: candidates ranked by evolutionary selection count, then single-image Eq. 3 fitness."""
    cands = np.asarray(matrix["candidates"], dtype=np.int64)
    position = {int(c): i for i, c in enumerate(cands)}
    counts = np.zeros(len(cands), dtype=int)
    for subset in subsets:
        for i in subset["ids"]:
            if int(i) in position:
                counts[position[int(i)]] += 1
    fitness = single_sample_fitness(matrix)
    order = np.lexsort((-fitness, -counts))  # last key first: count desc, then fitness desc
    n = max(1, min(n, len(cands) // 2)) if len(cands) > 1 else len(cands)
    best, worst = order[:n], order[::-1][:n]

    def part(rows: np.ndarray) -> dict[str, Any]:
        return {
            "ids": cands[rows].tolist(),
            "count": counts[rows].tolist(),
            "fitness": fitness[rows].tolist(),
            "sample_auroc": np.asarray(matrix["sample_auroc"], dtype=float)[rows].tolist(),
        }

    return {
        "best": part(best),
        "worst": part(worst),
        "n_subsets": len(subsets),
        "subsets": [{"M": s["M"], "seed": s["seed"], "ids": s["ids"]} for s in subsets],
    }


def pick_long_tail(features: np.ndarray, train_ids: np.ndarray, n: int) -> dict[str, Any]:
    """Fig. 7: distances of the class's training features to their mean; closest and farthest."""
    train_ids = np.asarray(train_ids, dtype=np.int64)
    feats = np.asarray(features[train_ids], dtype=np.float64).reshape(len(train_ids), -1)
    centre = feats.mean(axis=0)
    dist = np.linalg.norm(feats - centre, axis=1)
    order = np.argsort(dist, kind="stable")
    n = max(1, min(n, len(order) // 2)) if len(order) > 1 else len(order)
    return {
        "distances": dist.tolist(),
        "train_ids": train_ids.tolist(),
        "centre": {"ids": train_ids[order[:n]].tolist(), "distance": dist[order[:n]].tolist()},
        "tail": {"ids": train_ids[order[::-1][:n]].tolist(), "distance": dist[order[::-1][:n]].tolist()},
    }


def _caption_id(i: int, extra: str = "") -> str:
    return f"#{i}" + (f"\n{extra}" if extra else "")


def fig3(
    images: np.ndarray,
    subsets: dict[str, dict[str, Any]],
    test_ids: np.ndarray,
    test_labels: np.ndarray,
    n: int,
    out_stem: str | Path,
    title: str,
    info: dict[str, Any],
) -> dict[str, Any]:
    """The first ``n`` images of each method's subset side by side; below, a row of normal and a
    row of anomalous test images (evenly spaced through the test split)."""
    methods = list(subsets)
    shown = {m: [int(i) for i in subsets[m]["ids"][:n]] for m in methods}
    width = max((len(v) for v in shown.values()), default=n)
    n_cols = max(len(methods) * width + (len(methods) - 1), 1)
    test_ids, test_labels = np.asarray(test_ids), np.asarray(test_labels)
    normal = spaced(test_ids[test_labels == 0], n_cols)
    anomalous = spaced(test_ids[test_labels == 1], n_cols)
    sections = []
    for k, method in enumerate(methods):
        sections.append(
            Tiles(
                0,
                k * (width + 1),
                [images[i] for i in shown[method]],
                [_caption_id(i) for i in shown[method]],
                title=f"{method} (M = {subsets[method]['M']})",
                colour=plots.PALETTE.get(method, "#000000"),
            )
        )
    sections.append(
        Tiles(
            1,
            0,
            [images[i] for i in normal],
            [_caption_id(i) for i in normal],
            title="test: normal",
            colour=plots.NORMAL_COLOUR,
        )
    )
    sections.append(
        Tiles(
            2,
            0,
            [images[i] for i in anomalous],
            [_caption_id(i) for i in anomalous],
            title="test: anomalous",
            colour=plots.ANOMALY_COLOUR,
        )
    )
    draw_grid(sections, 3, n_cols, out_stem, title)
    sidecar = {
        **info,
        "n_images": n,
        "subsets": {m: {**subsets[m], "shown": shown[m]} for m in methods},
        "test_normal": normal,
        "test_anomalous": anomalous,
    }
    io.write_json(Path(out_stem).with_suffix(".json"), sidecar)
    return sidecar


def fig4(
    images: np.ndarray, per_class: list[dict[str, Any]], out_stem: str | Path, title: str, info: dict[str, Any]
) -> dict[str, Any]:
    """One row per class: the best ``n`` single samples, then the worst ``n``."""
    n = max(len(c["best"]["ids"]) for c in per_class)
    sections = []
    for r, c in enumerate(per_class):
        best, worst = c["best"], c["worst"]
        sections.append(
            Tiles(
                r,
                0,
                [images[i] for i in best["ids"]],
                [_caption_id(i, f"{a * 100:.1f} %") for i, a in zip(best["ids"], best["sample_auroc"])],
                title="best (val AUROC)" if r == 0 else "",
                colour=plots.PALETTE["evolutionary"],
                row_label=str(c["class_name"]),
            )
        )
        sections.append(
            Tiles(
                r,
                n + 1,
                [images[i] for i in worst["ids"]],
                [_caption_id(i, f"{a * 100:.1f} %") for i, a in zip(worst["ids"], worst["sample_auroc"])],
                title="worst (val AUROC)" if r == 0 else "",
                colour=plots.ANOMALY_COLOUR,
            )
        )
    draw_grid(sections, len(per_class), 2 * n + 1, out_stem, title)
    sidecar = {**info, "classes": per_class}
    io.write_json(Path(out_stem).with_suffix(".json"), sidecar)
    return sidecar


def fig5(
    images: np.ndarray, ranking: dict[str, Any], out_stem: str | Path, title: str, info: dict[str, Any]
) -> dict[str, Any]:
    """Two rows: the best ``n`` candidates by the evolutionary ranking, then the worst ``n``."""
    best, worst = ranking["best"], ranking["worst"]
    total = ranking["n_subsets"]
    sections = [
        Tiles(
            0,
            0,
            [images[i] for i in best["ids"]],
            [_caption_id(i, f"in {c}/{total} subsets") for i, c in zip(best["ids"], best["count"])],
            title="best: chosen most often by the evolutionary algorithm",
            colour=plots.PALETTE["evolutionary"],
        ),
        Tiles(
            1,
            0,
            [images[i] for i in worst["ids"]],
            [_caption_id(i, f"in {c}/{total} subsets") for i, c in zip(worst["ids"], worst["count"])],
            title=(
                "worst: never chosen, lowest Eq. 3 fitness alone"
                if not any(worst["count"])
                else "worst: chosen least often, then lowest Eq. 3 fitness alone"
            ),
            colour=plots.ANOMALY_COLOUR,
        ),
    ]
    draw_grid(sections, 2, max(len(best["ids"]), len(worst["ids"]), 1), out_stem, title)
    sidecar = {**info, **ranking}
    io.write_json(Path(out_stem).with_suffix(".json"), sidecar)
    return sidecar


def fig7(
    images: np.ndarray, tail: dict[str, Any], out_stem: str | Path, title: str, feature_label: str, info: dict[str, Any]
) -> dict[str, Any]:
    """Histogram of the training images' distances to the class centre, with the closest
    (centre) and farthest (tail) images below."""
    centre, far = tail["centre"], tail["tail"]
    n = max(len(centre["ids"]), 1)
    dist = np.asarray(tail["distances"])

    def header(ax: Any) -> None:
        ax.hist(dist, bins=min(40, max(10, len(dist) // 5)), color="#999999", edgecolor="white", linewidth=0.5)
        for d in centre["distance"]:
            ax.axvline(d, color=plots.NORMAL_COLOUR, linewidth=1.2, ymax=0.15)
        for d in far["distance"]:
            ax.axvline(d, color=plots.ANOMALY_COLOUR, linewidth=1.2, ymax=0.15)
        ax.set_xlabel(f"Euclidean distance to the mean training feature ({feature_label})")
        ax.set_ylabel("training images (count)")
        ax.grid(alpha=0.3, axis="y")

    sections = [
        Tiles(
            0,
            0,
            [images[i] for i in centre["ids"]],
            [_caption_id(i, f"d = {d:.3g}") for i, d in zip(centre["ids"], centre["distance"])],
            title="centre (closest)",
            colour=plots.NORMAL_COLOUR,
        ),
        Tiles(
            0,
            n + 1,
            [images[i] for i in far["ids"]],
            [_caption_id(i, f"d = {d:.3g}") for i, d in zip(far["ids"], far["distance"])],
            title="tail (farthest)",
            colour=plots.ANOMALY_COLOUR,
        ),
    ]
    draw_grid(sections, 1, 2 * n + 1, out_stem, title, header=header, header_height=2.6)
    sidecar = {**info, **tail}
    io.write_json(Path(out_stem).with_suffix(".json"), sidecar)
    return sidecar
