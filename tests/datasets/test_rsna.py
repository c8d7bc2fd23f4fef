"""RSNA from its CSVs and DICOM files (or PNG images with a metadata CSV)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from protolib.data import ImageDataset, load_dataset
from protolib.data.base import DatasetFilesError
from protolib.data.images import center_crop_square, resize, to_uint8
from protolib.data.medical import _xray
from protolib.pipeline import make_split, prepare_dataset
from tests.datasets.builders import (
    _png,
    assert_clear,
    assert_deterministic,
    assert_disjoint,
    check_balanced,
    split_of,
)


def dicom_template() -> Path:
    """A real DICOM file shipped inside pydicom (listed directly: get_testdata_files() needs the network)."""
    import pydicom

    return Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def write_dicom(path: Path, pixels: np.ndarray, sex: str, age: str, pid: str) -> None:
    import pydicom

    ds = pydicom.dcmread(str(dicom_template()))
    with warnings.catch_warnings():  # RSNA's plain '51' is not a valid DICOM age string: as in the real files
        warnings.simplefilter("ignore", UserWarning)
        ds.PatientID, ds.PatientName, ds.PatientSex, ds.PatientAge = pid, pid, sex, age
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path))


#: (sex, age) per demographic cell; ages as RSNA writes them (plain years) and as DICOM 'AS' strings
CELLS = [("M", "25"), ("M", "070Y"), ("F", "019Y"), ("F", "75")]


def make_rsna(root: Path, per_cell: int = 3) -> dict[str, dict[str, Any]]:
    """Per (sex x age group x label) cell ``per_cell`` patients, plus middle-aged ones (train only or
    excluded) and one of sex 'O'; 48x64 pixels (so the centre crop matters). Returns patient -> facts."""
    rng = np.random.default_rng(3)
    patients: dict[str, dict[str, Any]] = {}
    anomaly_kinds = ["Lung Opacity", "No Lung Opacity / Not Normal"]
    specs = [(s, a, label) for s, a in CELLS for label in ("Normal", "anomalous") for _ in range(per_cell)]
    specs += [
        ("M", "45", "Normal"),
        ("F", "45", "Normal"),
        ("F", "50", "Normal"),
        ("M", "33", "Normal"),
        ("F", "45", "anomalous"),
        ("M", "50", "anomalous"),
        ("O", "25", "Normal"),
    ]
    for i, (sex, age, label) in enumerate(specs):
        pid = f"{i:04d}abcd-{rng.integers(1e6):06d}"
        cls = anomaly_kinds[i % 2] if label == "anomalous" else "Normal"
        pixels = rng.integers(0, 256, size=(48, 64), dtype=np.uint8)
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", pixels, sex, age, pid)
        patients[pid] = {"class": cls, "sex": sex, "age": age, "pixels": pixels}
    info, boxes = ["patientId,class"], ["patientId,x,y,width,height,Target"]
    for pid, p in patients.items():
        n_boxes = 2 if p["class"] == "Lung Opacity" else 1  # one row per box, as in the official files
        info += [f"{pid},{p['class']}"] * n_boxes
        boxes += [f"{pid},100,200,50,60,1" if p["class"] == "Lung Opacity" else f"{pid},,,,,0"] * n_boxes
    (root / "stage_2_detailed_class_info.csv").write_text("\n".join(info) + "\n")
    (root / "stage_2_train_labels.csv").write_text("\n".join(boxes) + "\n")
    return patients


def test_rsna_dicoms_demographics_and_balanced_split(tmp_path: Path) -> None:
    patients = make_rsna(tmp_path)
    cfg = {
        "loader": "rsna",
        "root": str(tmp_path),
        "image_size": 32,
        "split": {"val_size": 8, "test_size": 8},
        "candidates": 100000,
    }
    data = load_dataset(cfg)
    assert data.images.shape == (31, 32, 32) and data.class_names == ["normal"]
    pids = data.meta["patient"].tolist()
    assert pids == list(patients)  # one image per patient, in file order, despite the repeated box rows
    assert data.meta["anomalous"].tolist() == [patients[p]["class"] != "Normal" for p in pids]
    assert data.meta["finding"].tolist() == [patients[p]["class"] for p in pids]
    assert data.meta["sex"].tolist() == [{"O": ""}.get(patients[p]["sex"], patients[p]["sex"]) for p in pids]
    assert data.meta["age"][:6].tolist() == [25.0] * 6 and data.meta["age"][6] == 70.0  # '070Y' -> 70
    first = patients[pids[0]]["pixels"]
    assert np.array_equal(data.images[0], resize(center_crop_square(first), 32))  # centre crop, then resize
    split = split_of(data, "normal", cfg)
    check_balanced(data, split.val_ids, per_cell=1)
    check_balanced(data, split.test_ids, per_cell=1)
    assert len(split.val_ids) == 8 and len(split.test_ids) == 8
    normals = np.flatnonzero(~data.meta["anomalous"])
    assert np.array_equal(split.train, np.setdiff1d(normals, np.concatenate([split.val_ids, split.test_ids])))
    assert len(split.train) == 12 + 4 + 1 - 8 and len(split.candidates) == len(split.train)  # K = all (paper)
    assert_disjoint(split)
    assert_deterministic(data, 0, cfg)


def test_rsna_through_prepare_and_split_rules(tmp_path: Path) -> None:
    make_rsna(tmp_path / "rsna")
    config = {
        "seed": 0,
        "datasets": {
            "rsna": {
                "loader": "rsna",
                "root": str(tmp_path / "rsna"),
                "image_size": 16,
                "split": {"val_size": 8, "test_size": 16, "seed": 9},
                "candidates": 3,
            }
        },
        "scores": {"chunk_size": 300},
    }
    prepare_dataset(config, "rsna", tmp_path / "rsna.npz")
    split = make_split(config, "rsna", 0, tmp_path / "rsna.npz", tmp_path / "rsna.json")
    data = ImageDataset.load(tmp_path / "rsna.npz")
    assert split.seed == 9 and len(split.test_ids) == 16 and len(split.candidates) == 3
    check_balanced(data, split.val_ids, per_cell=1)
    check_balanced(data, split.test_ids, per_cell=2)
    assert sorted(np.bincount(split.test_labels).tolist()) == [8, 8]


def test_rsna_png_images_with_metadata_csv(tmp_path: Path) -> None:
    patients = make_rsna(tmp_path, per_cell=2)
    rows = ["patientId,PatientSex,PatientAge"]
    for pid, p in patients.items():
        (tmp_path / "stage_2_train_images" / f"{pid}.dcm").unlink()
        _png(tmp_path / "stage_2_train_images" / f"{pid}.png", p["pixels"])
        rows.append(f"{pid},{p['sex']},{p['age']}")
    (tmp_path / "metadata.csv").write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(DatasetFilesError) as e:  # the last patient lacks demographics
        load_dataset({"loader": "rsna", "root": str(tmp_path), "image_size": 16})
    assert_clear(e, "metadata.csv", list(patients)[-1])
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    first = list(patients)[0]  # a 16-bit export, one pixel brighter than the rest: windowed as a DICOM's pixels
    deep = patients[first]["pixels"].astype(np.uint16) * 16
    deep[0, 0] = 4096
    Image.fromarray(deep).save(tmp_path / "stage_2_train_images" / f"{first}.png")
    data = load_dataset({"loader": "rsna", "root": str(tmp_path), "image_size": 16})
    assert len(data) == len(patients) and data.meta["path"][0].endswith(".png")
    row = data.meta["path"].tolist().index(f"stage_2_train_images/{first}.png")
    assert np.array_equal(data.images[row], _xray(to_uint8(deep), 16))
    split = split_of(data, 0, {"loader": "rsna", "split": {"val_size": 8, "test_size": 8}})
    check_balanced(data, split.test_ids, per_cell=1)


def test_rsna_errors(tmp_path: Path) -> None:
    import pydicom

    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "rsna", "root": str(tmp_path)})
    assert_clear(e, str(tmp_path / "stage_2_detailed_class_info.csv"), "not found", "stage_2_train_images")
    patients = make_rsna(tmp_path, per_cell=2)
    data = load_dataset({"loader": "rsna", "root": str(tmp_path), "image_size": 16})
    with pytest.raises(ValueError) as e:  # 2 per cell cannot fill 2 + 2
        split_of(data, 0, {"loader": "rsna", "split": {"val_size": 16, "test_size": 16}})
    assert_clear(e, "(sex M, young, normal) has 2", "(sex F, old, anomalous) has 2", "2 + 2 = 4", "split.val_size = 16")
    with pytest.raises(ValueError) as e:
        split_of(data, 0, {"loader": "rsna", "split": {"val_size": 12}})
    assert_clear(e, "split.val_size = 12", "multiple of 8")
    pid = list(patients)[3]
    truncated = Path(pydicom.__file__).parent / "data" / "test_files" / "MR_truncated.dcm"
    shutil.copy(truncated, tmp_path / "stage_2_train_images" / f"{pid}.dcm")
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "rsna", "root": str(tmp_path)})
    assert_clear(e, str(tmp_path / "stage_2_train_images" / f"{pid}.dcm"), "not a readable DICOM")
    (tmp_path / "stage_2_train_images" / f"{pid}.dcm").unlink()
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "rsna", "root": str(tmp_path)})
    assert_clear(e, f"no image for patient {pid}", f"{pid}.dcm")
    info = tmp_path / "stage_2_detailed_class_info.csv"
    info.write_text(info.read_text().replace(",Lung Opacity\n", ",Opacity?\n"))
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "rsna", "root": str(tmp_path)})
    assert_clear(e, "unknown class", "Opacity?")


def test_age_and_sex_parsing() -> None:
    from protolib.data.medical import parse_age, parse_sex
    from protolib.data.medical_split import age_groups

    assert parse_age("051Y") == 51 and parse_age("51") == 51 and parse_age(" 6M") == 0.5
    assert np.isnan(parse_age("")) and np.isnan(parse_age(None)) and np.isnan(parse_age("abc"))
    assert [parse_sex(s) for s in ("M", "f", "Male", "Female", "O", "Unknown", None)] == [
        "M",
        "F",
        "M",
        "F",
        "",
        "",
        "",
    ]
    assert age_groups(np.array([31.9, 32, 60, 60.5, np.nan])).tolist() == ["young", "", "", "old", ""]
