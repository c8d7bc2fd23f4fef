"""``protolib rank``: rank a folder of real images without labels.

The main folder holds 100 real "0" scans of scikit-learn's digits written as 32x32 PNGs, three
pure-noise images and one heavily corrupted "0" (30 % of its pixels inverted); those four must
surface as the most atypical. The val path runs on real faces (scikit-image's LFW subset: 60
faces to rank, 40 other faces as val normals, 40 non-face patches as val anomalies), where the
single-sample AUROCs are spread out (on digits "0" against the rest nearly all are 1.0).
Exit codes are checked through the real command line (``python -m protolib rank``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from protolib.rank import RankError, RankOptions, rank_folder
from protolib.rank.folders import read_folder
from tests.helpers import REPO

NOISE = ["noise_0.png", "noise_1.png", "noise_2.png"]
CORRUPTED = "zero_corrupted.png"
N_ZEROS = 100
SIZE = 32
LOCKED_REASON = "folder not read (Permission denied): its files are left out"


def _save(image: np.ndarray, path: Path) -> None:
    Image.fromarray(image).save(path)


def _digit(image: np.ndarray) -> np.ndarray:
    """An 8x8 digits scan (0..16) as a 32x32 uint8 image."""
    small = Image.fromarray(np.rint(image * 255.0 / 16.0).astype(np.uint8))
    return np.asarray(small.resize((SIZE, SIZE), Image.Resampling.BILINEAR))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("rank")
    train = root / "train"
    train.mkdir()
    zeros = digits.images[digits.target == 0]
    for i, image in enumerate(zeros[:N_ZEROS]):
        _save(_digit(image), train / f"zero_{i:03d}.png")
    for name in NOISE:
        _save(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8), train / name)
    corrupted = _digit(zeros[5]).copy()
    flip = rng.random(corrupted.shape) < 0.3
    corrupted[flip] = 255 - corrupted[flip]
    _save(corrupted, train / CORRUPTED)

    # the same images plus a truncated PNG, for the on-error tests
    with_broken = root / "with_broken"
    with_broken.mkdir()
    for path in sorted(train.iterdir())[:30]:
        (with_broken / path.name).write_bytes(path.read_bytes())
    (with_broken / "broken.png").write_bytes((train / "zero_000.png").read_bytes()[:120])
    (with_broken / "README.txt").write_text("not an image: ignored")

    empty = root / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    return {"train": train, "with_broken": with_broken, "empty": empty, "root": root}


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> dict[str, Path]:
    """scikit-image's 200 LFW crops (25x25): the first 100 are faces, the last 100 are not."""
    import skimage

    crops = np.load(Path(skimage.__file__).parent / "data" / "lfw_subset.npy")
    crops = np.rint(crops * 255.0).astype(np.uint8)
    root = tmp_path_factory.mktemp("faces")
    parts = {"train": range(0, 60), "val_normal": range(60, 100), "val_anomalous": range(100, 140)}
    for name, ids in parts.items():
        (root / name).mkdir()
        for i in ids:
            _save(crops[i], root / name / f"lfw_{i:03d}.png")
    return {name: root / name for name in parts} | {"root": root}


@pytest.fixture(scope="module")
def ranked(folders):
    out = folders["root"] / "out"
    result = rank_folder(folders["train"], out, image_size=SIZE, M=5, n_atypical=10, seed=0, progress=False, log=None)
    return result, out


@pytest.fixture(scope="module")
def ranked_with_val(faces):
    out = faces["root"] / "out"
    result = rank_folder(
        faces["train"],
        out,
        image_size=SIZE,
        M=5,
        n_atypical=5,
        val_normal=faces["val_normal"],
        # large enough to converge: seeds 0-2 all end on the same subset (a 30 x 10 run does not,
        # and whether it beats `all` then depends on the random stream)
        val_anomalous=faces["val_anomalous"],
        population=100,
        generations=50,
        seed=0,
        progress=False,
        log=None,
    )
    return result, out


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "protolib", "rank", *map(str, args)], capture_output=True, text=True, timeout=120
    )


# ----------------------------------------------------------------------------- ranking
def test_noise_and_corrupted_images_are_the_most_atypical(ranked):
    result, _ = ranked
    assert set(NOISE) <= set(result.atypical[:5])
    assert CORRUPTED in result.atypical[:5]
    bottom = result.table.sort_values("rank").file.tolist()[-4:]
    assert set(bottom) == set(NOISE) | {CORRUPTED}


def test_csv_lists_every_readable_image_exactly_once(ranked, folders):
    result, out = ranked
    table = pd.read_csv(out / "ranking.csv")
    written = sorted(p.name for p in folders["train"].iterdir())
    assert sorted(table.file) == written and table.file.is_unique
    assert table["rank"].tolist() == list(range(1, len(written) + 1))  # most prototypical first
    assert np.isfinite(table[["knn_sqdist", "core_sqdist"]].to_numpy()).all()
    assert table.atypical.sum() == 10 and table.coreset.sum() == 5


def test_coreset_has_M_distinct_typical_images(ranked):
    result, out = ranked
    core = pd.read_csv(out / "coreset.csv")
    assert core.file.tolist() == result.coreset and core.file.is_unique and len(core) == 5
    assert (core.core_sqdist == 0).all()
    assert not set(result.coreset) & (set(NOISE) | {CORRUPTED})
    assert json.loads((out / "coreset.json").read_text())["files"] == result.coreset
    atypical = pd.read_csv(out / "atypical.csv")
    assert atypical.file.tolist() == result.atypical


def test_contact_sheet_is_a_real_png(ranked):
    _, out = ranked
    sheet = out / "contact_sheet.png"
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sheet.stat().st_size > 20_000
    with Image.open(sheet) as image:
        assert image.width > 500 and image.height > 300


def test_same_seed_same_outputs(ranked, folders, tmp_path):
    """Also: the settings as one RankOptions give what the same keywords give."""
    result, out = ranked
    options = RankOptions(image_size=SIZE, M=5, n_atypical=10, seed=0, progress=False, contact_sheet=False)
    again = rank_folder(folders["train"], tmp_path, options, log=None)
    assert (tmp_path / "ranking.csv").read_bytes() == (out / "ranking.csv").read_bytes()
    assert again.coreset == result.coreset


# ----------------------------------------------------------------------------- with val folders
def test_val_path_writes_greedy_and_evolutionary_subsets(ranked_with_val):
    result, out = ranked_with_val
    table = pd.read_csv(out / "ranking.csv")
    for method in ("greedy", "evolutionary"):
        subset = json.loads((out / "subsets" / f"{method}.json").read_text())
        assert len(subset["files"]) == 5 and len(set(subset["files"])) == 5
        assert set(subset["files"]) <= set(table.file)
        assert 0.0 <= subset["val_auroc"] <= 1.0
        assert pd.read_csv(out / "subsets" / f"{method}.csv").file.tolist() == subset["files"]
        assert table[method].sum() == 5
    aurocs = pd.read_csv(out / "val_auroc.csv").set_index("method").val_auroc
    assert set(aurocs.index) == {"greedy", "evolutionary", "typical", "all"}
    assert ((aurocs >= 0) & (aurocs <= 1)).all()
    # greedy = the M images of best single-sample val AUROC
    chosen = table.greedy.to_numpy()
    assert table.val_auroc[chosen].min() >= table.val_auroc[~chosen].max()
    assert table.val_auroc.between(0, 1).all() and table.val_auroc.nunique() > 10
    # chosen on val, both beat the detector fitted on all 60 faces (on val)
    assert aurocs["greedy"] > aurocs["all"] and aurocs["evolutionary"] > aurocs["all"]


def test_val_auroc_equals_a_detector_fitted_on_the_subset(ranked_with_val, faces):
    from protolib.metrics import auroc
    from protolib.models import make_detector

    result, _ = ranked_with_val
    subset = read_folder(faces["train"], SIZE, progress=False)
    keep = [subset.names.index(f) for f in result.subsets["evolutionary"]]
    normal = read_folder(faces["val_normal"], SIZE, progress=False).images
    anomalous = read_folder(faces["val_anomalous"], SIZE, progress=False).images
    detector = make_detector({"detector": "knn", "backbone": "pixels", "k": 2}, device="cpu")
    scores = detector.fit(subset.images[keep]).score(np.concatenate([normal, anomalous]))
    labels = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
    assert result.val_auroc["evolutionary"] == pytest.approx(auroc(labels, scores))


# ----------------------------------------------------------------------------- image reading
def test_mixed_formats_modes_and_sizes(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 40), dtype=np.uint8)).save(tmp_path / "a_grey.png")
    Image.fromarray(rng.integers(0, 256, (50, 20, 3), dtype=np.uint8)).save(tmp_path / "b_colour.jpg")
    Image.fromarray(rng.integers(0, 65535, (20, 20), dtype=np.uint16)).save(tmp_path / "c_16bit.tif")
    Image.fromarray(rng.integers(0, 256, (20, 20, 4), dtype=np.uint8)).save(tmp_path / "d_rgba.png")
    (tmp_path / "e_notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "sub" / "read_too.png")
    data = read_folder(tmp_path, 16, progress=False)
    assert data.mode == "RGB" and data.images.shape == (5, 16, 16, 3) and data.images.dtype == np.uint8
    assert data.names == ["a_grey.png", "b_colour.jpg", "c_16bit.tif", "d_rgba.png", "sub/read_too.png"]
    assert [p.name for p in data.ignored] == ["e_notes.txt"]
    # a grey image becomes three equal channels; all-grey folders stay single-channel
    assert np.array_equal(data.images[0, ..., 0], data.images[0, ..., 2])
    (tmp_path / "b_colour.jpg").unlink()
    (tmp_path / "d_rgba.png").unlink()
    grey = read_folder(tmp_path, 16, progress=False)
    assert grey.mode == "L" and grey.images.shape == (3, 16, 16)
    result = rank_folder(
        tmp_path, tmp_path.parent / f"{tmp_path.name}_out", M=1, n_atypical=1, progress=False, log=None
    )
    assert sorted(result.table.file) == ["a_grey.png", "c_16bit.tif", "sub/read_too.png"]


@pytest.mark.parametrize("size", [64, 32])
def test_nan_pixels_become_0_whether_or_not_the_image_is_resized(tmp_path, size):
    """Float TIFFs in [-1, 1]: NaN ends black (0) as documented, also when resized (it was 128:
    filled with 0 before the common min-max scaling)."""
    ramp = np.linspace(-1, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(ramp, mode="F").save(tmp_path / "a.tif")
    holed = ramp.copy()
    holed[:32] = np.nan
    Image.fromarray(holed, mode="F").save(tmp_path / "b.tif")
    data = read_folder(tmp_path, size, progress=False)
    half = size // 2
    assert (data.images[1, : half - 1] == 0).all()  # the NaN half (the row at its edge is half NaN)
    assert np.array_equal(data.images[1, half + 1 :], data.images[0, half + 1 :])  # the rest as without NaN
    assert data.images[0, half + 1 :].min() > 100  # the lower half of the ramp is bright


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Listing ``folder`` fails as it does without read permission (the tests run as root, whom
    the kernel lets read any folder)."""
    scandir = os.scandir

    def denied(path: str | os.PathLike[str] = ".") -> os.ScandirIterator:
        if not isinstance(path, int) and Path(path) == folder:  # shutil.rmtree lists by file descriptor
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)


def test_hidden_files_and_unreadable_folders_are_listed_not_dropped(tmp_path, monkeypatch):
    """Hidden files and folders are skipped, but listed; a subfolder that cannot be listed is a
    skipped entry with the system's reason; multi-frame files are ranked by their first frame
    and listed."""
    images = tmp_path / "images"
    rng = np.random.default_rng(3)
    for name in ("a.png", "b.png", ".x.png", ".hdir/a.png", "locked/d.png"):
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        _save(rng.integers(0, 256, (16, 16), dtype=np.uint8), images / name)
    frames = [Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(images / "pages.tif", save_all=True, append_images=frames[1:])
    frames[0].save(images / "animated.png", save_all=True, append_images=frames[1:])
    _deny(monkeypatch, images / "locked")
    messages: list[str] = []
    out = tmp_path / "out"
    result = rank_folder(images, out, M=1, n_atypical=1, progress=False, contact_sheet=False, log=messages.append)
    assert sorted(result.table.file) == ["a.png", "animated.png", "b.png", "pages.tif"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hidden"] == [str(images / ".hdir"), str(images / ".x.png")]
    assert summary["skipped"] == [{"file": str(images / "locked"), "reason": LOCKED_REASON}]
    assert summary["first_frame_only"] == [str(images / "animated.png"), str(images / "pages.tif")]
    said = "\n".join(messages)
    assert "2 hidden file(s) and folder(s)" in said and "locked" in said and "Permission denied" in said
    assert "only the first frame of each is ranked" in said and "pages.tif" in said


def test_a_folder_to_rank_that_cannot_be_listed_is_named_with_the_reason(folders, tmp_path, monkeypatch):
    _deny(monkeypatch, folders["with_broken"])
    with pytest.raises(RankError, match=f"cannot read folder {str(folders['with_broken'])!r}: Permission denied"):
        rank_folder(folders["with_broken"], tmp_path, progress=False, log=None)


def test_python_api_raises_rank_error_for_bad_inputs(folders, tmp_path):
    with pytest.raises(RankError, match="M = 200 is larger than the 104 image files listed in"):
        rank_folder(folders["train"], tmp_path, M=200, progress=False, log=None)
    with pytest.raises(RankError, match="both --val-normal and --val-anomalous"):
        rank_folder(folders["train"], tmp_path, val_normal=folders["train"], progress=False, log=None)


def test_a_detector_without_frozen_features_uses_the_generic_path(folders, faces, tmp_path):
    """Models other than knn: typicality from make_backbone, selection by per-image fits."""
    from protolib.models import DETECTORS, Detector, make_backbone

    class MeanImage(Detector):
        name = "test_mean_image"

        def __init__(self, *, backbone: str = "pixels", image_size: int = 224) -> None:
            self.embed = make_backbone({"backbone": backbone, "image_size": image_size})

        def fit(self, images):
            self.centre = self.embed(images).mean(axis=0)
            return self

        def score(self, images):
            return ((self.embed(images) - self.centre) ** 2).sum(axis=1)

    if "test_mean_image" not in DETECTORS:
        DETECTORS.register("test_mean_image")(MeanImage)
    few = tmp_path / "few"
    few.mkdir()
    for path in sorted(folders["train"].glob("zero_0*.png"))[:12] + [folders["train"] / NOISE[0]]:
        (few / path.name).write_bytes(path.read_bytes())
    result = rank_folder(
        few,
        tmp_path / "out",
        model="test_mean_image",
        backbone="pixels",
        image_size=SIZE,
        M=2,
        n_atypical=3,
        val_normal=faces["val_normal"],
        val_anomalous=faces["val_anomalous"],
        population=6,
        generations=3,
        progress=False,
        log=None,
        contact_sheet=False,
    )
    assert result.atypical[0] == NOISE[0]
    assert len(result.subsets["greedy"]) == 2 and 0 <= result.val_auroc["evolutionary"] <= 1


def test_options_the_folder_lowers_are_noted(folders, tmp_path):
    """--coreset-exclude and --neighbours beyond the folder's 30 images: the values used are
    recorded, and the run says so (a note, and summary.json's notes)."""
    messages: list[str] = []
    result = rank_folder(
        folders["with_broken"],
        tmp_path,
        M=10,
        coreset_exclude=100,
        neighbours=1000,
        progress=False,
        contact_sheet=False,
        log=messages.append,
    )
    assert result.settings["coreset_exclude"] == 20 and result.settings["neighbours"] == 29
    expected = [
        "--coreset-exclude 100 leaves fewer than M = 10 of the 30 images to cover; leaving out 20",
        "--neighbours 1000 is more than the 29 other images; using k = 29",
    ]
    assert json.loads((tmp_path / "summary.json").read_text())["notes"] == expected
    assert [f"note: {note}" for note in expected] == [m for m in messages if m.startswith("note: --")]


# ----------------------------------------------------------------------------- command line
def test_cli_skips_a_truncated_png_and_names_it(folders, tmp_path):
    run = _cli(folders["with_broken"], "--out", tmp_path, "-M", "3", "--image-size", SIZE, "--quiet")
    assert run.returncode == 0, run.stderr
    assert "broken.png" in run.stderr and "broken.png" in run.stdout  # warned, and in the summary
    table = pd.read_csv(tmp_path / "ranking.csv")
    assert len(table) == 30 and "broken.png" not in set(table.file)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [Path(s["file"]).name for s in summary["skipped"]] == ["broken.png"]
    for what in ("ranking.csv", "coreset.csv", "atypical.csv", "contact_sheet.png"):
        assert str(tmp_path / what) in run.stdout


def test_cli_fails_on_a_truncated_png_with_on_error_fail(folders, tmp_path):
    run = _cli(folders["with_broken"], "--out", tmp_path, "--on-error", "fail")
    assert run.returncode == 2
    assert "broken.png" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "ranking.csv").exists()


@pytest.mark.parametrize("case", ["empty", "missing", "M_too_large", "one_val_folder", "val_inside", "same_val"])
def test_cli_bad_inputs_exit_2_with_a_clear_message(case, folders, faces, tmp_path):
    args = {
        "empty": ([folders["empty"]], [str(folders["empty"]), "no PNG, JPEG, TIFF or BMP"]),
        "missing": ([folders["root"] / "nope"], [str(folders["root"] / "nope"), "does not exist"]),
        "M_too_large": (
            [folders["with_broken"], "-M", "31"],
            ["M = 31", "30 readable images", str(folders["with_broken"])],
        ),
        "one_val_folder": ([folders["train"], "--val-normal", folders["train"]], ["--val-anomalous"]),
        # val images inside the folder to rank would be ranked and selected as training images too
        "val_inside": (
            [faces["root"], "--val-normal", faces["val_normal"], "--val-anomalous", faces["val_anomalous"]],
            [f"--val-normal {str(faces['val_normal'])!r} is inside IMAGES_DIR", "read as both"],
        ),
        "same_val": (
            [faces["train"], "--val-normal", faces["val_normal"], "--val-anomalous", faces["val_normal"]],
            ["is the same folder as --val-normal"],
        ),
    }[case]
    run = _cli(*args[0], "--out", tmp_path / "out")
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    for text in args[1]:
        assert text in run.stderr
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the --out folder
OUTPUTS = ["atypical.csv", "contact_sheet.png", "coreset.csv", "coreset.json", "ranking.csv", "summary.json"]

#: takes the lock of --out (argv[1]) the way a run does, says so, and holds it until killed
HOLD_LOCK = """
import sys
from pathlib import Path
from protolib.rank.out_folder import claimed
with claimed(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""

#: the command line, with a Ctrl-C (a real SIGINT) arriving while the contact sheet is drawn
INTERRUPTED_CLI = """
import os, signal, sys
import protolib.rank.app as app
app.draw = lambda *args, **kwargs: signal.raise_signal(getattr(signal, os.environ["RAISED"]))
from protolib.cli import main
sys.exit(main(["rank", *sys.argv[1:]]))
"""


def _consistent(out: Path) -> int:
    """The M of the result in ``out``, checked to be one run's: summary, coreset.json and coreset.csv agree."""
    M = json.loads((out / "summary.json").read_text())["settings"]["M"]
    assert json.loads((out / "coreset.json").read_text())["M"] == M
    assert len(pd.read_csv(out / "coreset.csv")) == M
    return M


def test_a_second_run_into_a_held_out_folder_is_refused_at_once(folders, tmp_path):
    """Two runs into one --out mixed their files (summary.json of one, coreset of the other); the
    lock is the kernel's, so a holder killed with SIGKILL leaves none behind."""
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline() == "held\n"
        run = _cli(folders["with_broken"], "--out", out, "-M", "3", "--image-size", SIZE, "--quiet")
        assert run.returncode == 2
        assert run.stderr.splitlines() == [
            f"error: another protolib rank run is writing to {str(out)!r} (pid {holder.pid}); "
            "wait for it or choose another --out"
        ]
        assert not (out / "ranking.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    run = _cli(folders["with_broken"], "--out", out, "-M", "3", "--image-size", SIZE, "--quiet")
    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(out)) == OUTPUTS  # no lock file, no staging folder left
    assert _consistent(out) == 3


def test_an_interrupted_rerun_leaves_the_earlier_result_whole(folders, tmp_path, monkeypatch):
    """An interrupted -M 7 rerun left coreset.csv with 7 rows beside the -M 3 run's summary.json."""
    out = tmp_path / "out"
    settings = {"image_size": SIZE, "progress": False, "log": None}
    rank_folder(folders["with_broken"], out, M=3, **settings)
    sheet = (out / "contact_sheet.png").read_bytes()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("protolib.rank.app.draw", interrupt)
    with pytest.raises(KeyboardInterrupt):
        rank_folder(folders["with_broken"], out, M=5, **settings)
    assert sorted(os.listdir(out)) == OUTPUTS
    assert _consistent(out) == 3 and (out / "contact_sheet.png").read_bytes() == sheet


def test_a_rerun_cut_short_while_moving_its_outputs_in_has_no_summary(folders, tmp_path, monkeypatch):
    """summary.json goes first and comes back last: a partial set of outputs is recognisable."""
    out = tmp_path / "out"
    settings = {"image_size": SIZE, "progress": False, "log": None, "contact_sheet": False}
    rank_folder(folders["with_broken"], out, M=3, **settings)
    replace = os.replace

    def cut(src, dst):
        if Path(dst) == out / "coreset.json":  # after ranking.csv and coreset.csv were moved in
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(os, "replace", cut)
    with pytest.raises(KeyboardInterrupt):
        rank_folder(folders["with_broken"], out, M=5, **settings)
    assert not (out / "summary.json").exists()
    assert sorted(os.listdir(out)) == ["atypical.csv", "coreset.csv", "coreset.json", "ranking.csv"]


@pytest.mark.parametrize("raised", ["SIGINT", "SIGTERM"])  # Ctrl-C; kill or a scheduler's time limit
@pytest.mark.parametrize("earlier", [False, True])
def test_ctrl_c_is_one_line_saying_what_out_holds_and_exit_130(earlier, raised, folders, tmp_path):
    out = tmp_path / "out"
    if earlier:
        rank_folder(folders["with_broken"], out, M=3, image_size=SIZE, progress=False, log=None)
    run = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_CLI, str(folders["with_broken"]), "--out", str(out), "-M", "5", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "RAISED": raised},
    )
    assert run.returncode == 130 and "Traceback" not in run.stderr
    if earlier:
        assert run.stderr.splitlines()[-1] == (
            f"interrupted; {str(out)!r} holds a complete result, the one its summary.json describes "
            "(a run moves its outputs in only at its end)"
        )
        assert _consistent(out) == 3
    else:
        assert (
            run.stderr.splitlines()[-1] == f"interrupted; {str(out)!r} holds no complete result (summary.json absent)"
        )
        assert not out.exists()  # the folder the run made is removed again when it holds nothing


# ----------------------------------------------------------------------------- refused before decoding
@pytest.fixture
def no_decoding(monkeypatch):
    """Every image decode fails the test: what the options and the listing decide comes first."""

    def decode(path, what):
        raise AssertionError(f"{path} was decoded before the error")

    monkeypatch.setattr("protolib.data.images._open", decode)


EARLY_CASES = {  # RankOptions fields -> the start of the one-line error
    "--set k=0 with val folders": ({"model_options": {"k": 0}, "val": True}, "--set k: 0 is less than the minimum"),
    "--set k=-3 with val folders": ({"model_options": {"k": -3}, "val": True}, "--set k: -3 is less than the minimum"),
    "--set k=foo": ({"model_options": {"k": "foo"}}, "--set k: 'foo' is not of type 'integer'"),
    "--set an unknown key": ({"model_options": {"kk": 2}}, "--set kk: not a setting of detector 'knn'; allowed: "),
    "--set image_size": ({"model_options": {"image_size": True}}, "--set image_size: use --image-size"),
    "--set batch_size=-1": ({"model_options": {"batch_size": -1}}, "--set batch_size: use --batch-size"),
    "--set batch_size=0": ({"model_options": {"batch_size": 0}}, "--set batch_size: use --batch-size"),
    "--set weights": ({"model_options": {"weights": "/nonexistent"}}, "--set weights: use --weights"),
    "--set detector": ({"model_options": {"detector": "panda"}}, "--set detector: use --model"),
    "--backbone resnet19": ({"backbone": "resnet19"}, "--backbone: unknown backbone 'resnet19'; allowed: pixels, "),
    "--backbone pixels --model panda": (
        {"backbone": "pixels", "model": "panda"},
        "--backbone: detector 'panda' works on a ResNet's layers and 'pixels' has none; allowed: resnet18",
    ),
    "--backbone pixels --model fae": ({"backbone": "pixels", "model": "fae"}, "--backbone: detector 'fae' works on"),
    "--weights a folder": ({"weights": "."}, "--weights: '.' is a folder, not a state_dict file"),
    "--device cuda:abc": ({"device": "cuda:abc"}, "--device must be auto, cpu, cuda or cuda:N, got 'cuda:abc'"),
    "--device cudaXYZ": ({"device": "cudaXYZ"}, "--device must be auto, cpu, cuda or cuda:N, got 'cudaXYZ'"),
    "--seed 2**32": ({"seed": 2**32}, "--seed must be a whole number from 0 to 4294967295"),
    "-M above the files listed": ({"M": 500}, "M = 500 is larger than the 104 image files listed in"),
    "an empty val folder": ({"val": "empty"}, "--val-anomalous "),
}


@pytest.mark.parametrize("case", list(EARLY_CASES))
def test_what_the_options_decide_is_refused_before_any_image_is_decoded(case, folders, faces, tmp_path, no_decoding):
    settings, message = EARLY_CASES[case]
    settings = dict(settings)
    if settings.pop("val", False):
        anomalous = folders["empty"] if EARLY_CASES[case][0]["val"] == "empty" else faces["val_anomalous"]
        settings.update(val_normal=faces["val_normal"], val_anomalous=anomalous)
    with pytest.raises(RankError) as err:
        rank_folder(folders["train"], tmp_path / "out", progress=False, log=None, **settings)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_cuda_device_torch_cannot_use_is_refused_before_any_image_is_decoded(
    folders, tmp_path, no_decoding, monkeypatch
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RankError, match=r"^--device cuda: device: cuda, but torch cannot use a CUDA GPU here"):
        rank_folder(folders["train"], tmp_path / "out", device="cuda", progress=False, log=None)


def test_imagenet_weights_it_cannot_get_are_refused_before_any_image_is_decoded(
    folders, tmp_path, no_decoding, monkeypatch
):
    """Offline, with nothing in torch's hub cache: the error names --weights and where the file goes."""
    import torch

    def offline(url, dst, *args, **kwargs):
        raise OSError("offline")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RankError) as err:
        rank_folder(folders["train"], tmp_path / "out", backbone="resnet18", weights="imagenet", device="cpu", log=None)
    assert str(err.value).startswith("--weights imagenet: could not get ImageNet weights for resnet18 (offline)")
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in str(err.value)


# ----------------------------------------------------------------------------- files the reader cannot decode
def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height grey pixels, with no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def _few(folders: dict[str, Path], root: Path) -> Path:
    root.mkdir()
    for path in sorted(folders["train"].glob("zero_*.png"))[:8]:
        (root / path.name).write_bytes(path.read_bytes())
    return root


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("side", "reason"),
    [(60000, "image too large to decode (Image size (3600000000 pixels) exceeds limit"), (12000, "truncated")],
)
def test_a_file_claiming_a_huge_size_is_skipped_and_named(folders, tmp_path, side, reason):
    """60000 x 60000 is above twice Pillow's bomb limit (unreadable), 12000 x 12000 above it (a
    note naming the file, then skipped here: the header has no pixels), never Pillow's own warning."""
    few = _few(folders, tmp_path / "few")
    _png_header(few / "huge.png", side, side)
    notes = []
    result = rank_folder(few, tmp_path / "out", M=2, image_size=SIZE, progress=False, log=notes.append)
    assert [(Path(p).name, reason in r) for p, r in result.skipped] == [("huge.png", True)]
    assert (side == 12000) == any(n.startswith(f"note: {few / 'huge.png'}: 12000x12000 pixels, above") for n in notes)
    with pytest.raises(RankError, match=r"cannot read image .*huge\.png.* \(use --on-error skip"):
        rank_folder(few, tmp_path / "out2", M=2, image_size=SIZE, on_error="fail", progress=False, log=None)


def test_a_file_it_may_not_open_is_named_with_the_system_error(folders, tmp_path, monkeypatch):
    """Root reads any file, so the permission error is the one Pillow's open raises."""
    from PIL import Image

    few = _few(folders, tmp_path / "few")
    opened = Image.open

    def open_(path, *args, **kwargs):
        if Path(path).name == "zero_000.png":
            raise PermissionError(13, "Permission denied", str(path))
        return opened(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", open_)
    result = rank_folder(few, tmp_path / "out", M=2, image_size=SIZE, progress=False, log=None, contact_sheet=False)
    assert result.skipped == [(str(few / "zero_000.png"), "cannot open image (Permission denied)")]


def test_quiet_hides_the_network_and_evolutionary_bars(faces, tmp_path):
    """-q: no progress bar at all, also the ResNet's own batch bar and the generations' bar
    (stderr is a pipe here, as a file would be)."""
    run = _cli(
        faces["train"],
        "--out",
        tmp_path,
        "-q",
        "--backbone",
        "resnet18",
        "--weights",
        "none",
        "--image-size",
        SIZE,
        "-M",
        "2",
        "--val-normal",
        faces["val_normal"],
        "--val-anomalous",
        faces["val_anomalous"],
        "--population",
        "6",
        "--generations",
        "3",
        "--no-contact-sheet",
    )
    assert run.returncode == 0, run.stderr
    assert "%|" not in run.stderr and "it/s" not in run.stderr, run.stderr
