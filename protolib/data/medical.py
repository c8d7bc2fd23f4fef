"""The paper's medical sets: BraTS (T2 MRI slices), RSNA pneumonia and CheXpert (chest X-rays).

Each is one study with one class, ``normal`` (index 0): ``labels`` are all 0 and
``meta['anomalous']`` marks glioma slices / abnormal radiographs, because the anomalies are not a
class of their own here, unlike one-vs-rest. Each is registered with the balanced split protocol of
``medical_split`` (suppl. Sec. 7):

* BraTS: val and test of ``split.val_size`` / ``split.test_size`` slices (80 each: 40 healthy +
  40 glioma), the remaining healthy slices train (the paper had 101). As the references: each
  volume's slices are resized, then the whole volume is histogram-equalised over its brain
  (iolag/UPD_study ``mri_preprocessing.py``); a slice is glioma when its segmentation has more
  than 16 lesion pixels (FeliMe/unsupervised_fairness ``camcan_brats.py``), else healthy.
* RSNA, CheXpert: val and test of 800 each, balanced over sex (M/F) x age group (young < 32,
  old > 60) x label: 100 images per cell; images of other or implausible ages (outside
  0 < age < 110: unsupervised_fairness ``chexpert.py`` keeps age > 0, its RSNA file
  ``rsna_pneumonia_detection.py`` (in its history, @ 39fb7c3) age < 110) or unknown sex never
  enter val or test. CheXpert's row filter: ``chexpert_rows``. The remaining
  normal images train (all of them: ``split.max_train`` caps them), except images of patients
  who are in val or test: train, val and test are patient-disjoint (unsupervised_fairness
  ``chexpert.py`` drops val/test patients from train).

Readers (nibabel for NIfTI, pydicom for DICOM) are imported only by the loader that needs them.
Every unreadable file, missing column or too small a cell raises one error naming it.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from protolib.data.base import DatasetFilesError, ImageDataset, register_dataset
from protolib.data.images import (
    IMAGE_SUFFIXES,
    center_crop_square,
    image_size,
    optional_import,
    read_windowed,
    require_root,
    resize,
    to_uint8,
)
from protolib.data.medical_split import brats_split, xray_split

CLASS_NAMES = ["normal"]
DEFAULT_IMAGE_SIZE = 128
#: a BraTS slice is glioma above this many lesion pixels (unsupervised_fairness camcan_brats.py)
GLIOMA_MIN_PIXELS = 16


# ----------------------------------------------------------------------------- shared pieces
def equalize_hist(image: np.ndarray, mask: np.ndarray | None = None, nbins: int = 256) -> np.ndarray:
    """Histogram equalisation to [0, 1], as ``skimage.exposure.equalize_hist`` (no skimage needed).

    The histogram is taken over ``mask`` (the brain) so the black background does not flatten it.
    """
    image = np.asarray(image, dtype=np.float64)
    values = image[mask] if mask is not None else image.ravel()
    if values.size == 0 or values.min() == values.max():
        return np.zeros(image.shape)
    hist, edges = np.histogram(values, bins=nbins)
    centers = (edges[:-1] + edges[1:]) / 2
    cdf = hist.cumsum() / hist.sum()
    return np.interp(image.ravel(), centers, cdf).reshape(image.shape)


def parse_sex(value: Any) -> str:
    """'M' / 'F', or '' when unknown (DICOM uses M/F/O, CheXpert Male/Female/Unknown)."""
    text = str(value).strip().upper() if value is not None else ""
    return {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F"}.get(text, "")


def parse_age(value: Any) -> float:
    """Age in years (NaN when unknown): DICOM 'AS' strings ('051Y', '006M'), plain numbers ('51')."""
    if value is None:
        return math.nan
    text = str(value).strip().upper()
    if not text:
        return math.nan
    scale = {"Y": 1.0, "M": 1 / 12, "W": 1 / 52, "D": 1 / 365}.get(text[-1])
    if scale is not None:
        text = text[:-1]
    try:
        age = float(text) * (scale or 1.0)
    except ValueError:
        return math.nan
    return age if math.isfinite(age) and age >= 0 else math.nan


def _xray(image: np.ndarray, size: int) -> np.ndarray:
    """Centre crop to a square, then resize: the paper's X-ray preprocessing."""
    return resize(center_crop_square(image), size)


# ----------------------------------------------------------------------------- BraTS
BRATS_LAYOUT = (
    "root/<patient>/<patient>_t2.nii.gz and root/<patient>/<patient>_seg.nii.gz (the BraTS2020 training "
    "layout, e.g. root/BraTS20_Training_001/BraTS20_Training_001_t2.nii.gz; .nii also accepted)"
)


def _nifti(folder: Path, suffix: str) -> Path | None:
    for ext in (".nii.gz", ".nii"):
        path = folder / f"{folder.name}_{suffix}{ext}"
        if path.is_file():
            return path
    return None


def _find_seg(folder: Path) -> Path | None:
    """``<patient>_seg.nii.gz``, else the one other file named *seg* (BraTS20_Training_355's quirk)."""
    path = _nifti(folder, "seg")
    if path is not None:
        return path
    hits = [p for p in folder.iterdir() if p.is_file() and "seg" in p.name.lower() and ".nii" in p.name.lower()]
    return hits[0] if len(hits) == 1 else None


def brats_patients(root: Path) -> list[tuple[str, Path, Path]]:
    """(patient, T2 file, segmentation file) for every patient folder; folders without NIfTI files are skipped."""
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if not any(".nii" in p.name for p in folder.iterdir()):
            continue
        t2, seg = _nifti(folder, "t2"), _find_seg(folder)
        for what, path in (("t2", t2), ("seg", seg)):
            if path is None:
                raise DatasetFilesError(f"brats: {folder} lacks {folder.name}_{what}.nii.gz; expected {BRATS_LAYOUT}")
        out.append((folder.name, t2, seg))
    if not out:
        raise DatasetFilesError(f"brats: no patient folders with NIfTI files in {root}; expected {BRATS_LAYOUT}")
    return out


def _read_volume(nib: Any, path: Path) -> np.ndarray:
    """A 3-D volume in RAS+ orientation (axial slices along the last axis, whatever the file's order)."""
    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        volume = np.asanyarray(img.dataobj)
    except Exception as err:  # nibabel raises ImageFileError, EOFError, OSError, zlib.error ...
        raise DatasetFilesError(f"brats: {path} is not a readable NIfTI volume ({type(err).__name__}: {err})") from None
    volume = np.squeeze(volume)
    if volume.ndim != 3:
        raise DatasetFilesError(
            f"brats: {path} holds a {volume.ndim}-d array of shape {volume.shape}, expected a 3-d volume"
        )
    return volume


def _resize_float(image: np.ndarray, size: int) -> np.ndarray:
    """A float slice -> (size, size), Pillow's bilinear filter (antialiased when shrinking)."""
    # here: PIL only in jobs that decode image files
    from PIL import Image

    if image.shape == (size, size):
        return image.astype(np.float64)
    out = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F").resize((size, size), Image.BILINEAR)
    return np.asarray(out, dtype=np.float64)


def brats_volume(t2: np.ndarray, size: int) -> np.ndarray:
    """A T2 volume (H, W, D) -> uint8 (size, size, D), anterior up: every axial slice resized, then
    the whole volume histogram-equalised over its brain (x > 0), background kept black
    (UPD_study: resize, then equalise the volume)."""
    resized = np.stack([_resize_float(t2[:, :, z], size) for z in range(t2.shape[2])], axis=2)
    brain = resized > 0
    eq = equalize_hist(resized, mask=brain if brain.any() else None) * brain
    return np.rint(np.rot90(eq) * 255).astype(np.uint8)


def load_brats(cfg: dict[str, Any]) -> ImageDataset:
    nib = optional_import("nibabel", "nibabel", "brats (NIfTI volumes)")
    root = require_root(cfg, "brats", BRATS_LAYOUT)
    size = image_size(cfg, DEFAULT_IMAGE_SIZE)
    n_slices = int(cfg.get("slices", 5))
    if n_slices < 1:
        raise ValueError(f"slices must be >= 1, got {n_slices}")
    images, anomalous, tumour, patients, slices, paths = [], [], [], [], [], []
    for patient, t2_path, seg_path in brats_patients(root):
        t2, seg = _read_volume(nib, t2_path), _read_volume(nib, seg_path)
        if t2.shape != seg.shape:
            raise DatasetFilesError(f"brats: {seg_path} has shape {seg.shape} but {t2_path} has {t2.shape}")
        depth = t2.shape[2]
        first = depth // 2 - n_slices // 2
        if first < 0 or first + n_slices > depth:
            raise DatasetFilesError(f"brats: {t2_path} has {depth} axial slices, fewer than slices = {n_slices}")
        volume = brats_volume(t2.astype(np.float64), size)
        for z in range(first, first + n_slices):
            lesion = seg[:, :, z] > 0
            images.append(volume[:, :, z])
            anomalous.append(int(lesion.sum()) > GLIOMA_MIN_PIXELS)
            tumour.append(float(lesion.mean()))
            patients.append(patient)
            slices.append(z)
            paths.append(str(t2_path.relative_to(root)))
    return ImageDataset(
        name="brats",
        images=np.stack(images),
        labels=np.zeros(len(images), dtype=np.int64),
        class_names=list(CLASS_NAMES),
        meta={
            "anomalous": np.asarray(anomalous, dtype=bool),
            "tumour_fraction": np.asarray(tumour, dtype=np.float32),
            "patient": np.asarray(patients, dtype=str),
            "slice": np.asarray(slices, dtype=np.int64),
            "path": np.asarray(paths, dtype=str),
        },
    )


# ----------------------------------------------------------------------------- RSNA
RSNA_NORMAL = "Normal"
RSNA_ANOMALOUS = ("Lung Opacity", "No Lung Opacity / Not Normal")
RSNA_LAYOUT = (
    "root/stage_2_detailed_class_info.csv (patientId, class), root/stage_2_train_labels.csv (patientId, x, y, "
    "width, height, Target) and root/stage_2_train_images/<patientId>.dcm (the Kaggle RSNA Pneumonia Detection "
    "Challenge files; PNG/JPEG images instead of .dcm need root/metadata.csv with patientId, PatientSex, PatientAge)"
)


def _read_csv(path: Path, required: list[str], what: str, layout: str) -> Any:
    # here: pandas (~0.35 s) only for the label tables of the medical sets
    import pandas as pd

    if not path.is_file():
        raise DatasetFilesError(f"{what}: {path} not found; expected {layout}")
    try:
        table = pd.read_csv(path)
    except Exception as err:  # ParserError, UnicodeDecodeError, EmptyDataError ...
        raise DatasetFilesError(f"{what}: {path} is not a readable CSV file ({type(err).__name__}: {err})") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DatasetFilesError(
            f"{what}: {path} lacks the column(s) {', '.join(missing)} (has {', '.join(map(str, table.columns))}); "
            f"expected {layout}"
        )
    return table


def rsna_labels(root: Path) -> tuple[list[str], list[str]]:
    """(patientId, class) once per patient, file order; the boxes file, when present, must agree."""
    info = _read_csv(root / "stage_2_detailed_class_info.csv", ["patientId", "class"], "rsna", RSNA_LAYOUT)
    unique = info[["patientId", "class"]].astype(str).drop_duplicates()  # one row per box: deduplicate
    repeated = unique["patientId"].duplicated(keep=False)
    if repeated.any():
        pid = unique.loc[repeated, "patientId"].iloc[0]
        found = unique.loc[unique["patientId"] == pid, "class"].tolist()
        raise DatasetFilesError(f"rsna: patient {pid} has several classes {found} in stage_2_detailed_class_info.csv")
    pids, labels = unique["patientId"].tolist(), unique["class"].tolist()
    unknown = sorted(set(labels) - {RSNA_NORMAL, *RSNA_ANOMALOUS})
    if unknown:
        raise DatasetFilesError(
            f"rsna: stage_2_detailed_class_info.csv has unknown class(es) {unknown}; expected "
            f"{RSNA_NORMAL!r}, {RSNA_ANOMALOUS[0]!r} or {RSNA_ANOMALOUS[1]!r}"
        )
    boxes_path = root / "stage_2_train_labels.csv"
    if boxes_path.is_file():
        boxes = _read_csv(boxes_path, ["patientId", "Target"], "rsna", RSNA_LAYOUT)
        target = boxes.groupby("patientId")["Target"].max()
        for pid, label in zip(pids, labels, strict=True):
            if pid in target.index and bool(target[pid]) != (label == "Lung Opacity"):
                raise DatasetFilesError(
                    f"rsna: patient {pid} is {label!r} in stage_2_detailed_class_info.csv but has Target = "
                    f"{target[pid]} in stage_2_train_labels.csv"
                )
    return pids, labels


def _read_dicom(pydicom: Any, path: Path) -> tuple[np.ndarray, str, float]:
    """Pixels (grey uint8, MONOCHROME1 inverted) plus PatientSex and PatientAge from the header."""
    try:
        with warnings.catch_warnings():
            # RSNA writes PatientAge as plain years ('51'), not DICOM's '051Y': pydicom would warn per file
            warnings.simplefilter("ignore", UserWarning)
            ds = pydicom.dcmread(str(path))
            pixels = np.asarray(ds.pixel_array)
            sex, age = parse_sex(ds.get("PatientSex")), parse_age(ds.get("PatientAge"))
            photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    except Exception as err:  # InvalidDicomError, truncated pixel data, no decoder for the syntax ...
        raise DatasetFilesError(f"rsna: {path} is not a readable DICOM image ({type(err).__name__}: {err})") from None
    if pixels.ndim == 3 and pixels.shape[-1] == 3:
        pixels = pixels.mean(axis=-1)
    if pixels.ndim != 2:
        raise DatasetFilesError(f"rsna: {path} holds pixel data of shape {pixels.shape}, expected one 2-d image")
    image = to_uint8(pixels)
    if photometric == "MONOCHROME1":
        image = 255 - image
    return image, sex, age


def load_rsna(cfg: dict[str, Any]) -> ImageDataset:
    root = require_root(cfg, "rsna", RSNA_LAYOUT)
    size = image_size(cfg, DEFAULT_IMAGE_SIZE)
    pids, classes = rsna_labels(root)
    folder = root / "stage_2_train_images"
    if not folder.is_dir():
        raise DatasetFilesError(f"rsna: image folder {folder} does not exist; expected {RSNA_LAYOUT}")
    demographics = None
    if (root / "metadata.csv").is_file():
        table = _read_csv(root / "metadata.csv", ["patientId", "PatientSex", "PatientAge"], "rsna", RSNA_LAYOUT)
        demographics = {
            str(r.patientId): (parse_sex(r.PatientSex), parse_age(r.PatientAge)) for r in table.itertuples()
        }
    pydicom = None
    images = np.empty((len(pids), size, size), dtype=np.uint8)
    sexes, ages, paths = [], [], []
    for i, pid in enumerate(pids):
        dcm = folder / f"{pid}.dcm"
        if dcm.is_file():
            pydicom = pydicom or optional_import("pydicom", "pydicom", "rsna (DICOM images)")
            image, sex, age = _read_dicom(pydicom, dcm)
            path = dcm
        else:
            path = next((folder / f"{pid}{ext}" for ext in IMAGE_SUFFIXES if (folder / f"{pid}{ext}").is_file()), None)
            if path is None:
                raise DatasetFilesError(f"rsna: no image for patient {pid}: {dcm} not found; expected {RSNA_LAYOUT}")
            if demographics is None or pid not in demographics:
                raise DatasetFilesError(
                    f"rsna: {path} is not DICOM, so sex and age must come from {root / 'metadata.csv'} "
                    f"(patientId, PatientSex, PatientAge), which lacks patient {pid}"
                )
            image, (sex, age) = read_windowed(path, what="RSNA image"), demographics[pid]
        if demographics is not None and pid in demographics:
            sex, age = demographics[pid]
        images[i] = _xray(image, size)
        sexes.append(sex)
        ages.append(age)
        paths.append(str(path.relative_to(root)))
    return ImageDataset(
        name="rsna",
        images=images,
        labels=np.zeros(len(pids), dtype=np.int64),
        class_names=list(CLASS_NAMES),
        meta={
            "anomalous": np.asarray([c != RSNA_NORMAL for c in classes], dtype=bool),
            "finding": np.asarray(classes, dtype=str),
            "sex": np.asarray(sexes, dtype=str),
            "age": np.asarray(ages, dtype=np.float64),
            "patient": np.asarray(pids, dtype=str),
            "path": np.asarray(paths, dtype=str),
        },
    )


# ----------------------------------------------------------------------------- CheXpert
CHEXPERT_LABELS = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices",
]  # fmt: skip
CHEXPERT_REQUIRED = [
    "Path",
    "Sex",
    "Age",
    "Frontal/Lateral",
    "No Finding",
    "Pneumonia",
    "Lung Opacity",
    "Support Devices",
]
CHEXPERT_LAYOUT = (
    "root/train.csv (columns Path, Sex, Age, Frontal/Lateral, No Finding, Pneumonia, Lung Opacity, Support "
    "Devices, ...), optionally root/valid.csv with the same columns, with each image at the CSV's Path relative "
    "to root's parent (the official CheXpert-v1.0[-small]/ folder as root) or to root"
)


def chexpert_rows(table: Any) -> tuple[Any, np.ndarray]:
    """The rows the paper keeps, and which of them are anomalous.

    Frontal views; without support devices: a blank Support Devices only (as the reference,
    FeliMe/unsupervised_fairness ``src/data/chexpert.py``: ``isna()``; 0, 1 and -1 are dropped);
    without any uncertain (-1) label, as the paper says ("excluded those where any of the labels
    is marked as uncertain"; the reference drops only rows without any certain label); normal =
    "No Finding", anomalous = pneumonia or lung opacity, as the paper says (the reference: every
    row whose No Finding is blank); rows that are neither, or both, are dropped.
    """
    labels = [c for c in CHEXPERT_LABELS if c in table.columns]
    values = table[labels].apply(lambda col: col.astype(float)).fillna(0.0)
    keep = (
        (table["Frontal/Lateral"].astype(str).str.strip().str.lower() == "frontal")
        & table["Support Devices"].astype(float).isna()
        & ~(values == -1).any(axis=1)
    )
    normal = values["No Finding"] == 1
    anomalous = (values["Pneumonia"] == 1) | (values["Lung Opacity"] == 1)
    keep &= normal ^ anomalous
    return table[keep.to_numpy()], anomalous[keep].to_numpy()


def chexpert_table(root: Path) -> Any:
    """train.csv, followed by valid.csv where there is one (the reference reads both)."""
    # here: pandas (~0.35 s) only for the label tables of the medical sets
    import pandas as pd

    tables = [_read_csv(root / "train.csv", CHEXPERT_REQUIRED, "chexpert", CHEXPERT_LAYOUT)]
    if (root / "valid.csv").is_file():
        tables.append(_read_csv(root / "valid.csv", CHEXPERT_REQUIRED, "chexpert", CHEXPERT_LAYOUT))
    return pd.concat(tables, ignore_index=True)


def _chexpert_path(root: Path, rel: str) -> Path:
    rel_path = Path(rel)
    options = [root.parent / rel_path, root / rel_path]
    if len(rel_path.parts) > 1:
        options.append(root / Path(*rel_path.parts[1:]))
    hit = next((p for p in options if p.is_file()), None)
    if hit is None:
        raise DatasetFilesError(
            f"chexpert: image {rel!r} of train.csv/valid.csv not found (looked for {', '.join(map(str, options))}); "
            f"expected {CHEXPERT_LAYOUT}"
        )
    return hit


def load_chexpert(cfg: dict[str, Any]) -> ImageDataset:
    root = require_root(cfg, "chexpert", CHEXPERT_LAYOUT)
    size = image_size(cfg, DEFAULT_IMAGE_SIZE)
    table = chexpert_table(root)
    rows, anomalous = chexpert_rows(table)
    if len(rows) == 0:
        raise DatasetFilesError(
            f"chexpert: no row of {root / 'train.csv'} (or valid.csv) is a frontal view without support devices or "
            "uncertain labels showing No Finding, Pneumonia or Lung Opacity"
        )
    images = np.empty((len(rows), size, size), dtype=np.uint8)
    paths = []
    for i, rel in enumerate(rows["Path"].astype(str)):
        path = _chexpert_path(root, rel)
        images[i] = _xray(read_windowed(path, what="CheXpert image"), size)
        paths.append(rel)
    finding = np.where(
        anomalous,
        np.where(rows["Pneumonia"].astype(float).fillna(0).to_numpy() == 1, "Pneumonia", "Lung Opacity"),
        "No Finding",
    )
    patients = [next((p for p in Path(rel).parts if p.startswith("patient")), "") for rel in paths]
    return ImageDataset(
        name="chexpert",
        images=images,
        labels=np.zeros(len(rows), dtype=np.int64),
        class_names=list(CLASS_NAMES),
        meta={
            "anomalous": np.asarray(anomalous, dtype=bool),
            "finding": np.asarray(finding, dtype=str),
            "sex": np.asarray([parse_sex(s) for s in rows["Sex"]], dtype=str),
            "age": np.asarray([parse_age(a) for a in rows["Age"]], dtype=np.float64),
            "patient": np.asarray(patients, dtype=str),
            "path": np.asarray(paths, dtype=str),
        },
    )


_BALANCED_SPLIT_KEYS = ("split.val_size", "split.test_size", "split.max_train")  # medical_split.balanced_split
register_dataset("brats", CLASS_NAMES, split=brats_split, reads=("image_size", "slices", *_BALANCED_SPLIT_KEYS))(
    load_brats
)
register_dataset("rsna", CLASS_NAMES, split=xray_split, reads=("image_size", *_BALANCED_SPLIT_KEYS))(load_rsna)
register_dataset("chexpert", CLASS_NAMES, split=xray_split, reads=("image_size", *_BALANCED_SPLIT_KEYS))(load_chexpert)
