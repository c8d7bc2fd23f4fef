"""CheXpert from its CSV and images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protolib.data import load_dataset
from protolib.data.base import DatasetFilesError
from tests.datasets.builders import (
    _png,
    assert_clear,
    assert_deterministic,
    assert_disjoint,
    check_balanced,
    split_of,
)

CHEXPERT_COLUMNS = [
    "Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly",
    "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
    "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices",
]  # fmt: skip


def make_chexpert(root: Path, per_cell: int = 2) -> list[str]:
    """root = .../CheXpert-v1.0-small with train.csv and valid.csv; returns the Paths the paper's
    filter keeps (train.csv's, then valid.csv's)."""
    rng = np.random.default_rng(4)
    rows, kept = [], []

    def add(sex: str, age: int, view: str, labels: dict[str, float], keep: bool, part: str = "train") -> None:
        n = len(rows) + 1 + (500 if part == "valid" else 0)  # valid.csv's patients are others
        rel = f"CheXpert-v1.0-small/{part}/patient{n:05d}/study1/view1_{view.lower()}.png"
        _png(root.parent / rel, rng.integers(0, 256, size=(40, 30), dtype=np.uint8))
        values = dict.fromkeys(CHEXPERT_COLUMNS, "")
        values.update({"Path": rel, "Sex": sex, "Age": str(age), "Frontal/Lateral": view, "AP/PA": "AP"})
        values.update({k: str(v) for k, v in labels.items()})
        rows.append(",".join(values[c] for c in CHEXPERT_COLUMNS))
        if keep:
            kept.append(rel)

    for sex in ("Male", "Female"):
        for age in (20, 75):
            for i in range(per_cell):
                add(sex, age, "Frontal", {"No Finding": 1.0}, True)
                add(sex, age, "Frontal", {"Pneumonia": 1.0} if i % 2 else {"Lung Opacity": 1.0, "Edema": 0.0}, True)
    add("Male", 45, "Frontal", {"No Finding": 1.0}, True)  # middle-aged: train only
    add("Unknown", 20, "Frontal", {"No Finding": 1.0}, True)  # unknown sex: train only
    add("Male", 20, "Lateral", {"No Finding": 1.0}, False)  # lateral view
    add("Female", 75, "Frontal", {"No Finding": 1.0, "Support Devices": 1.0}, False)  # support devices
    add("Female", 75, "Frontal", {"No Finding": 1.0, "Support Devices": 0.0}, False)  # not blank: the reference
    add("Female", 20, "Frontal", {"No Finding": 1.0, "Cardiomegaly": -1.0}, False)  # an uncertain label
    add("Male", 75, "Frontal", {"Pneumonia": -1.0}, False)  # uncertain pneumonia
    add("Male", 75, "Frontal", {"Cardiomegaly": 1.0}, False)  # neither normal nor pneumonia / opacity
    (root / "train.csv").write_text(",".join(CHEXPERT_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    del rows[:]
    add("Male", 45, "Frontal", {"No Finding": 1.0}, True, part="valid")  # valid.csv is read too
    add("Male", 45, "Frontal", {"No Finding": 1.0, "Support Devices": 0.0}, False, part="valid")
    (root / "valid.csv").write_text(",".join(CHEXPERT_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    return kept


def test_chexpert_filters_and_balanced_split(tmp_path: Path) -> None:
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    kept = make_chexpert(root)
    cfg = {"loader": "chexpert", "root": str(root), "split": {"val_size": 8, "test_size": 8}, "candidates": 300}
    data = load_dataset(cfg)
    assert data.meta["path"].tolist() == kept and data.images.shape == (len(kept), 128, 128)
    assert data.meta["anomalous"].sum() == 8 and data.meta["sex"][-2] == ""
    assert set(data.meta["finding"].tolist()) == {"No Finding", "Pneumonia", "Lung Opacity"}
    split = split_of(data, 0, cfg)
    check_balanced(data, split.val_ids, per_cell=1)
    check_balanced(data, split.test_ids, per_cell=1)
    assert len(split.train) == 11 - 8 and not data.meta["anomalous"][split.train].any()
    assert_disjoint(split)
    assert_deterministic(data, 0, cfg)


def test_chexpert_errors(tmp_path: Path) -> None:
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "chexpert", "root": str(root)})
    assert_clear(e, str(root / "train.csv"), "not found", "Frontal/Lateral")
    kept = make_chexpert(root)
    bad = root.parent / kept[2]
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "chexpert", "root": str(root)})
    assert_clear(e, str(bad), "unreadable")
    bad.unlink()
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "chexpert", "root": str(root)})
    assert_clear(e, kept[2], "not found")
    table = (root / "train.csv").read_text().replace(",Support Devices", ",Devices")
    (root / "train.csv").write_text(table)
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "chexpert", "root": str(root)})
    assert_clear(e, "lacks the column(s) Support Devices")
