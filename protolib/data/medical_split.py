"""The medical sets' split protocol (suppl. Sec. 7): val and test with equally many images per
cell, the cells being the label (BraTS) or sex x age group x label (RSNA, CheXpert).

Cells are filled by a seeded draw; all normal images left over train (``split.max_train`` draws
that many of them), for the X-rays without the images of val/test patients (patient-disjoint, as
unsupervised_fairness ``chexpert.py``). A cell too small for its share raises an error naming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protolib.data.base import ImageDataset
from protolib.data.splits import Split, build_split, class_seed, split_cfg

#: age groups of Lagogiannis et al., used by the paper: young < 32 years, old > 60 years
YOUNG_BELOW = 32
OLD_ABOVE = 60
#: plausible ages: unsupervised_fairness keeps age > 0 (``src/data/chexpert.py``) and age < 110 (its RSNA
#: file ``src/data/rsna_pneumonia_detection.py`` @ 39fb7c3, not in the released tree; RSNA's metadata
#: has ages 148-155)
AGE_RANGE = (0, 110)
SEXES = ("M", "F")
AGE_GROUPS = ("young", "old")


def age_groups(age: np.ndarray) -> np.ndarray:
    """'young' (< 32), 'old' (> 60) or '' (in between, unknown or implausible: outside 0 < age <
    110; left out of val and test)."""
    age = np.asarray(age, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        plausible = (age > AGE_RANGE[0]) & (age < AGE_RANGE[1])
        group = np.where(age < YOUNG_BELOW, "young", np.where(age > OLD_ABOVE, "old", ""))
    return np.where(plausible, group, "")


def _size(cfg: dict[str, Any], key: str, default: int) -> int:
    value = split_cfg(cfg).get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(f"split.{key} must be an integer >= 2, got {value!r}")
    return value


def cells(data: ImageDataset, demographics: bool) -> list[tuple[str, np.ndarray]]:
    """(name, member mask) of every cell, in the order they are drawn."""
    anomalous = data.meta["anomalous"].astype(bool)
    labels = (("normal", ~anomalous), ("anomalous", anomalous))
    if not demographics:
        return [(name, is_label) for name, is_label in labels]
    sex = data.meta["sex"].astype(str)
    group = age_groups(data.meta["age"])
    return [
        (f"sex {s}, {g}, {name}", (sex == s) & (group == g) & is_label)
        for s in SEXES
        for g in AGE_GROUPS
        for name, is_label in labels
    ]


def _per_cell(
    cfg: dict[str, Any], n_cells: int, default_size: int, dataset_key: str, demographics: bool
) -> tuple[dict[str, int], dict[str, int]]:
    """The val and test sizes, and each one's images per cell (the sizes must divide evenly)."""
    sizes = {part: _size(cfg, f"{part}_size", default_size) for part in ("val", "test")}
    for part, size in sizes.items():
        if size % n_cells:
            raise ValueError(
                f"{dataset_key}: split.{part}_size = {size} cannot be balanced over the {n_cells} cells "
                f"({'sex x age group x label' if demographics else 'label'}); use a multiple of {n_cells}"
            )
    return sizes, {part: size // n_cells for part, size in sizes.items()}


def _draw_cells(
    pools: list[tuple[str, np.ndarray]],
    per: dict[str, int],
    sizes: dict[str, int],
    rng: np.random.Generator,
    dataset_key: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Val and test ids: ``per`` images of each cell, drawn in cell order."""
    need = per["val"] + per["test"]
    short = [f"({name}) has {len(pool)}" for name, pool in pools if len(pool) < need]
    if short:
        raise ValueError(
            f"{dataset_key}: too few images for val and test: {'; '.join(short)}, but each cell needs "
            f"{per['val']} + {per['test']} = {need} (split.val_size = {sizes['val']}, split.test_size = "
            f"{sizes['test']}, over {len(pools)} cells); lower them or add images"
        )
    drawn = [rng.permutation(pool)[:need] for _, pool in pools]
    return np.concatenate([d[: per["val"]] for d in drawn]), np.concatenate([d[per["val"] :] for d in drawn])


def balanced_split(
    data: ImageDataset,
    normal_class: int,
    cfg: dict[str, Any],
    seed: int,
    dataset_key: str,
    *,
    demographics: bool,
    default_size: int,
    patient_disjoint: bool = False,
) -> Split:
    """Val and test with equally many images per cell; the remaining normal images train."""
    anomalous = data.meta["anomalous"].astype(bool)
    ids = np.arange(len(data), dtype=np.int64)
    pools = [(name, ids[member]) for name, member in cells(data, demographics)]
    sizes, per = _per_cell(cfg, len(pools), default_size, dataset_key, demographics)
    rng = class_seed(seed, normal_class)
    val_ids, test_ids = _draw_cells(pools, per, sizes, rng, dataset_key)
    train = np.setdiff1d(ids[~anomalous], np.concatenate([val_ids, test_ids]))
    if patient_disjoint:
        patients = data.meta["patient"].astype(str)
        held_out = np.unique(patients[np.concatenate([val_ids, test_ids])])
        train = train[~np.isin(patients[train], held_out)]
    max_train = split_cfg(cfg).get("max_train")
    if max_train is not None and len(train) > int(max_train):
        train = rng.choice(train, size=int(max_train), replace=False)
    return build_split(
        dataset=dataset_key,
        normal_class=normal_class,
        class_name=data.class_names[normal_class],
        seed=seed,
        train=train,
        val_ids=val_ids,
        test_ids=test_ids,
        anomalous=anomalous,
        candidates=cfg["candidates"],
        rng=rng,
        protocol={
            "kind": "balanced: " + ("sex x age group x label" if demographics else "label"),
            "val_size": sizes["val"],
            "test_size": sizes["test"],
            "per_cell": per,
            "cell_pool_sizes": {name: int(len(pool)) for name, pool in pools},
            "max_train": max_train,
            "patient_disjoint": patient_disjoint,
            **({"young_below": YOUNG_BELOW, "old_above": OLD_ABOVE} if demographics else {}),
        },
        fix="lower split.val_size / split.test_size or add images",
    )


def brats_split(data: ImageDataset, normal_class: int, cfg: dict[str, Any], seed: int, dataset_key: str) -> Split:
    """80 val / 80 test slices, half glioma; the remaining healthy slices train."""
    return balanced_split(data, normal_class, cfg, seed, dataset_key, demographics=False, default_size=80)


def xray_split(data: ImageDataset, normal_class: int, cfg: dict[str, Any], seed: int, dataset_key: str) -> Split:
    """800 val / 800 test, balanced over sex x age group x label; remaining normals train."""
    return balanced_split(
        data, normal_class, cfg, seed, dataset_key, demographics=True, default_size=800, patient_disjoint=True
    )
