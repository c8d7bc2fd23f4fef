"""Bad input: one clear message naming the key, file or value, before any job runs where the
config alone decides it; or, where the input is fine after all, the right result. Never a
wrong number without a word (issue #17)."""

from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from protolib import integrity, io, pipeline
from protolib.checks import InputMismatchError, read_result, read_scores, read_subset_record
from protolib.config import ConfigError, load, validate
from protolib.data.splits import load_split
from protolib.layout import Layout
from protolib.scoring import single_sample_scores
from tests.helpers import REPO, small_config, snakemake, write_config


def base(tmp_path: Path) -> dict:
    return small_config(tmp_path / "results")


def _manual(config: dict, lists: dict) -> None:
    config["selection"]["methods"] = ["manual"]
    config["selection"]["manual"] = {"digits": lists}


# ----------------------------------------------------------------------------- the config table
BAD_CONFIGS = {
    "results empty": (lambda c, t: c.update(results=""), "results: '' should be non-empty"),
    "results an existing file": (
        lambda c, t: (t.joinpath("afile").write_text("x"), c.update(results=str(t / "afile"))),
        "is an existing file, not a folder",
    ),
    "manual list missing a class": (
        lambda c, t: _manual(c, {3: [1, 2, 3, 4, 5]}),
        "selection.manual.digits: no ids for class(es) 8",
    ),
    "manual key not a class": (
        lambda c, t: _manual(c, {3: [1, 2, 3, 4, 5], 8: [1, 2, 3, 4, 5], "eleven": [1, 2, 3, 4, 5]}),
        "selection.manual.digits.eleven: not a class of 'digits'",
    ),
    "manual class given twice": (
        lambda c, t: _manual(c, {3: [1, 2, 3, 4, 5], "3": [1, 2, 3, 4, 5], 8: [1, 2, 3, 4, 5]}),
        "selection.manual.digits: keys 3 and '3' both name class '3'",
    ),
    "manual duplicate ids": (
        lambda c, t: _manual(c, {3: [1, 1, 2, 3, 4], 8: [1, 2, 3, 4, 5]}),
        "selection.manual.digits.3: the first 5 ids contain duplicates",
    ),
    "M a whole float": (
        lambda c, t: c["selection"].update(M=[1, 5.0]),
        "selection.M.1: 5.0 is not of type 'integer'",
    ),
    "chunk_size a whole float": (
        lambda c, t: c["scores"].update(chunk_size=16.0),
        "scores.chunk_size: 16.0 is not of type 'integer'",
    ),
    "an image size the pixels backbone does not read": (
        lambda c, t: c["models"]["knn"].update(image_size=16),
        "models.knn.image_size: not read with backbone pixels (datasets.<name>.image_size sizes the prepared",
    ),
    "a report key the figure does not read": (  # fig1 showed class 3 only, its sidecar said [3, 8]
        lambda c, t: c.update(report={"fig1": {"classes": [3, 8]}}),
        "report.fig1.classes: fig1 does not read it (it reads class, dataset, methods, model); remove it",
    ),
    "a seed numpy and scikit-learn cannot take": (
        lambda c, t: c.update(seed=2**32),
        "seed: 4294967296 is greater than the maximum of 4294967295",
    ),
    "duplicate runs": (
        lambda c, t: c["runs"].append({"dataset": "digits", "model": "knn"}),
        "runs[1]: dataset 'digits' with model 'knn' is already runs[0]; list each pair once",
    ),
    "split.train smaller than M": (
        lambda c, t: c["datasets"]["digits"]["split"].update(train=3),
        "datasets.digits.split.train: 3 training images per class, fewer than the largest selection.M = 5",
    ),
    "candidates above a split.train count": (
        lambda c, t: c["datasets"]["digits"].update(split={"train": 100}, candidates=500),
        "datasets.digits.candidates: 500 is more than the split.train = 100 training images of each class; at most 100",
    ),
    "population 1e9": (
        lambda c, t: c["selection"]["evolutionary"].update(population=10**9),
        "selection.evolutionary.population: 1000000000 is greater than the maximum of 100000",
    ),
    "random repeats 1e9": (
        lambda c, t: c["selection"]["random"].update(repeats=10**9),
        "selection.random.repeats: 1000000000 is greater than the maximum of 1000",
    ),
    "fig2 dataset not a run": (
        lambda c, t: (
            c["datasets"].update(digits2={"loader": "digits", "classes": [3]}),
            c.update(report={"fig2": {"dataset": "digits2"}}),
        ),
        "report.fig2: no run has dataset 'digits2'",
    ),
    "figure methods not selected": (
        lambda c, t: c.update(report={"fig3": {"methods": ["greedy", "manual"]}}),
        "report.fig3.methods: 'manual' not in selection.methods",
    ),
    "fig6 source unknown": (
        lambda c, t: c.update(report={"fig6": {"source": "nope"}}),
        "report.fig6.source: 'nope' is not the name of a transfer entry (none configured)",
    ),
    "transfer target unknown": (
        lambda c, t: c.update(
            transfer=[
                {"source": {"dataset": "digits", "model": "knn"}, "target": {"dataset": "chexpert", "model": "knn"}}
            ]
        ),
        "transfer[0].target.dataset: 'chexpert' is not a key of datasets",
    ),
    "transfer methods not selected": (
        lambda c, t: c.update(
            transfer=[
                {
                    "source": {"dataset": "digits", "model": "knn"},
                    "target": {"dataset": "digits", "model": "knn"},
                    "methods": ["manual"],
                }
            ]
        ),
        "transfer[0].methods: 'manual' not in selection.methods",
    ),
    "dataset root a file": (
        lambda c, t: c["datasets"].update(cifar10={"root": "/etc/passwd", "classes": [0], "candidates": 30}),
        "datasets.cifar10.root: '/etc/passwd' is a file, not a folder",
    ),
    "digits given a root": (  # digits ship with scikit-learn: the root was ignored without a word
        lambda c, t: c["datasets"]["digits"].update(root=str(t)),
        "datasets.digits.root: the 'digits' loader reads no files (its data ship with its library); remove it",
    ),
    "weights file of garbage": (  # torch's UnpicklingError advised weights_only=False, in the first GPU job
        lambda c, t: (
            t.joinpath("w.pt").write_bytes(bytes(range(256)) * 8),
            c["models"].update(res={"detector": "knn", "backbone": "resnet18", "weights": str(t / "w.pt")}),
        ),
        "w.pt: not a PyTorch state_dict file (torch cannot read it",
    ),
    "a key the loader does not read": (  # digits has no val size: the split would silently be the same
        lambda c, t: c["datasets"]["digits"]["split"].update(val_size=50),
        "datasets.digits.split.val_size: the 'digits' loader does not read it (only brats, chexpert, rsna do)",
    ),
    "transfer leaves classes out": (  # classes 0 and 1 would silently be dropped from the transfer means
        lambda c, t: (
            c["datasets"].update(other=dict(c["datasets"]["digits"], loader="digits", classes=[2, 3, 4])),
            c["datasets"]["digits"].update(classes=[0, 1, 2]),
            c.update(
                transfer=[
                    {"source": {"dataset": "digits", "model": "knn"}, "target": {"dataset": "other", "model": "knn"}}
                ]
            ),
        ),
        "transfer[0]: datasets.digits.classes [0, 1, 2] and datasets.other.classes [2, 3, 4] pair as [(2, 2)] "
        "(the classes both run; by position only when they share none), which leaves out digits: [0, 1]; "
        "other: [3, 4]",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_message_naming_the_key(case, tmp_path):
    mutate, fragment = BAD_CONFIGS[case]
    config = base(tmp_path)
    mutate(config, tmp_path)
    with pytest.raises(ConfigError) as err:
        validate(config)
    assert fragment in str(err.value)


def test_a_number_nested_in_config_overrides_points_to_a_second_configfile(tmp_path):
    """--config 'datasets={digits: {candidates: 20}}': Snakemake hands the 20 over as the text '20'."""
    config = base(tmp_path)
    config["datasets"]["digits"]["candidates"] = "20"
    with pytest.raises(ConfigError) as err:
        validate(config, "--config", overrides={"datasets"})
    assert (
        "datasets.digits.candidates: '20' is not of type 'integer' (set by --config); Snakemake reads a value "
        "nested in --config as text: set it in a second --configfile"
    ) in str(err.value)


def test_a_results_folder_under_home_is_expanded(tmp_path, monkeypatch):
    """Snakemake writes paths as given: `~/r` would be a folder named `~` in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path))
    config = validate({**base(tmp_path), "results": "~/study"})
    assert config["results"] == str(tmp_path / "study")


def test_a_transfer_entry_without_methods_is_refused(tmp_path):
    config = base(tmp_path)
    config["transfer"] = [
        {"name": "t", "source": {"dataset": "digits", "model": "knn"}, "target": {"dataset": "digits", "model": "knn"}}
    ]
    config["transfer"][0]["methods"] = []
    with pytest.raises(ConfigError, match=r"transfer\.0\.methods: \[\] should be non-empty"):
        validate(config)


def test_a_class_named_twice_is_one_class(tmp_path):
    config = base(tmp_path)
    config["datasets"]["digits"]["classes"] = [3, 8, "8", 3]
    validate(config)
    assert pipeline.classes(config, "digits") == [3, 8]


# ----------------------------------------------------------------------------- config files
BAD_FILES = {
    "duplicate top-level key": (
        lambda p: p.write_text("seed: 0\nresults: a\nseed: 1\n"),
        "key 'seed' is written twice (lines 1 and 3)",
    ),
    "a folder": (lambda p: p.mkdir(), "is a folder; expected a YAML config file"),
    "a binary file": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00"), "not a text file"),
    "a list": (lambda p: p.write_text("- results\n- seed\n"), "expected a mapping of settings (key: value lines"),
    "a scalar": (lambda p: p.write_text("42\n"), "got a int ('42')"),
    "empty": (lambda p: p.write_text(""), "got nothing (an empty file)"),
    "a pipe": (lambda p: os.mkfifo(p), "not a regular file (a pipe, socket or device)"),  # read: blocked forever
    "a huge file": (lambda p: p.write_text("# x\n" * 300_000), "bytes; a study config is a few kilobytes"),
    "an alias bomb": (  # 1.5 kB that expand to 10^6 values: a 644 MB message after 23 s
        lambda p: p.write_text(
            "a: &l0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
            + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 6))
            + "selection: {M: *l5}\n"
        ),
        "its aliases (*name) expand to more than 100000 values",
    ),
    "a plugin raising on import": (
        lambda p: (
            p.with_name("bad_plugin_mod.py").write_text("x = 1 / 0\n"),
            p.write_text(yaml.safe_dump({**base(p.parent), "plugins": ["bad_plugin_mod"]})),
        ),
        "plugins[0]: importing module 'bad_plugin_mod' raised ZeroDivisionError: division by zero",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_validate_config_names_a_bad_file(case, tmp_path):
    path = tmp_path / "study.yaml"
    BAD_FILES[case][0](path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    run = subprocess.run(
        [sys.executable, "-m", "protolib", "validate-config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert str(path) in run.stderr and BAD_FILES[case][1] in run.stderr
    assert len(run.stderr.strip().splitlines()) <= 2, run.stderr


def test_yaml_merge_keys_are_read_as_yaml_reads_them(tmp_path):
    """`<<: *anchor` was refused as "not valid YAML"; a key written twice is still refused."""
    path = tmp_path / "study.yaml"
    text = yaml.safe_dump(base(tmp_path), sort_keys=False)
    models = "models:\n  knn: &m {detector: knn, backbone: pixels, k: 2}\n  knn3:\n    <<: *m\n    k: 3\n"
    text = text[: text.index("models:")] + models + text[text.index("runs:") :]
    path.write_text(text)
    assert load(path)["models"]["knn3"] == {"detector": "knn", "backbone": "pixels", "k": 3}
    path.write_text(text.replace("    k: 3\n", "    k: 3\n    k: 4\n"))
    with pytest.raises(ConfigError, match="key 'k' is written twice"):
        load(path)


# ----------------------------------------------------------------------------- the Snakefile
@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--config", "foo=1"], ["with --config foo=1 is invalid", "'foo' was unexpected", "(set by --config)"]),
        (["--config", "results="], ["results: None is not of type 'string' (set by --config)"]),
    ],
)
def test_snakemake_names_config_overrides_without_traceback(args, fragments, tmp_path):
    path = write_config(tmp_path / "study.yaml", base(tmp_path))
    run = snakemake("-n", "--cores", "1", "--configfile", str(path), *args)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and 'File "' not in run.stderr
    for fragment in fragments:
        assert fragment in run.stderr
    assert not (tmp_path / "results").exists()


def test_snakemake_rejects_duplicate_keys_and_figure_errors_before_any_job(tmp_path):
    config = base(tmp_path)
    config["report"] = {"fig2": {"dataset": "nope"}}
    path = write_config(tmp_path / "study.yaml", config)
    path.write_text(path.read_text() + "seed: 3\n")
    run = snakemake("-n", "--cores", "1", "--configfile", str(path))
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert f"{path}: key 'seed' is written twice" in run.stderr
    path.write_text(yaml.safe_dump(config))
    run = snakemake("-n", "--cores", "1", "--configfile", str(path))
    assert run.returncode != 0 and "report.fig2: no run has dataset 'nope'" in run.stderr


@pytest.mark.parametrize(("text", "got"), [("- results\n", "got a list"), ("", "got nothing (an empty file)")])
def test_snakemake_names_an_embedded_config_that_is_not_a_mapping(text, got, tmp_path):
    """Snakemake's own message ("Config file must be given as JSON or YAML with keys at top level")
    names no file. (A --configfile is read by Snakemake before the Snakefile, out of its reach:
    `protolib validate-config FILE` names it.)"""
    (tmp_path / "config.yaml").write_text(text)
    run = snakemake("-n", "--cores", "1", workdir=tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert (
        f"error: config.yaml: expected a mapping of settings (key: value lines, e.g. results: results), {got}"
        in run.stderr
    )


def test_snakemake_names_a_plugin_that_raises_on_import(tmp_path, monkeypatch):
    (tmp_path / "raising_plugin.py").write_text("import math\nVALUE = math.log(0)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), str(tmp_path)]))
    path = write_config(tmp_path / "study.yaml", {**base(tmp_path), "plugins": ["raising_plugin"]})
    run = snakemake("-n", "--cores", "1", "--configfile", str(path))
    assert run.returncode != 0 and "Traceback" not in run.stderr and 'File "' not in run.stderr
    assert (
        "plugins[0]: importing module 'raising_plugin' raised ValueError: math domain error "
        f"({tmp_path / 'raising_plugin.py'}:2); fix the module"
    ) in run.stderr


# ----------------------------------------------------------------------------- what a stage reads
@pytest.fixture
def scored(tmp_path):
    """One class of the small study up to its score matrix."""
    config = validate(base(tmp_path))
    data, split = tmp_path / "digits.npz", tmp_path / "split.json"
    pipeline.prepare_dataset(config, "digits", data)
    pipeline.make_split(config, "digits", 3, data, split)
    features = tmp_path / "pixels.npy"
    pipeline.make_features(config, "digits", "knn", data, features, tmp_path / "pixels.json")
    chunks = []
    for chunk in range(pipeline.n_chunks(config, "digits")):
        chunks.append(str(tmp_path / f"chunk{chunk}.npz"))
        pipeline.score_chunk(config, "digits", "knn", chunk, split, None, features, chunks[-1])
    matrix = tmp_path / "matrix.npz"
    pipeline.merge_scores(config, "digits", "knn", split, chunks, matrix)
    return config, split, features, matrix


def _edit_matrix(path: Path, **changes) -> None:
    data = io.read_npz(path)
    data.update(changes)
    io.write_npz(path, **data)


@pytest.mark.parametrize("method", ["greedy", "gmm"])
def test_nan_in_a_score_matrix_stops_every_selector_naming_the_file(method, scored, tmp_path):
    config, split, features, matrix = scored
    scores = io.read_npz(matrix)["scores"].copy()
    scores[0, 0] = np.nan
    _edit_matrix(matrix, scores=scores)
    with pytest.raises(InputMismatchError, match=rf"{matrix} \(scores\): 1 values are NaN"):
        pipeline.select_subsets(config, "digits", "knn", method, split, matrix, features, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_manual_lists_with_integer_class_keys_are_used(scored, tmp_path):
    """The README's form (YAML integer class keys) selects the listed ids."""
    config, split, features, matrix = scored
    train = json.loads(Path(split).read_text())["train"]
    lists = yaml.safe_load(f"3: {train[:5][::-1]}\n8: [1, 2, 3, 4, 5]\n")
    config = copy.deepcopy(config)
    _manual(config, lists)
    config = validate(config)
    pipeline.select_subsets(config, "digits", "knn", "manual", split, matrix, features, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "M5_seed0.json").read_text())["ids"] == train[:5][::-1]


def test_a_stale_sample_auroc_is_refused(scored, tmp_path):
    config, split, features, matrix = scored
    _edit_matrix(matrix, sample_auroc=io.read_npz(matrix)["sample_auroc"][::-1].copy())
    with pytest.raises(InputMismatchError, match="sample_auroc is not the AUROC of the score rows"):
        pipeline.select_subsets(config, "digits", "knn", "greedy", split, matrix, features, tmp_path / "out")
    from protolib import report

    with pytest.raises(InputMismatchError, match="sample_auroc"):
        report.write_fig4(
            tmp_path / "digits.npz",
            [str(matrix)],
            {"dataset": "digits", "model": "knn", "classes": [3], "class_names": ["3"]},
            tmp_path / "fig4.png",
        )


def test_a_score_matrix_edited_after_writing_is_still_caught(scored, tmp_path, monkeypatch):
    """The stored digest lets a reader skip recomputing the AUROCs only for the file as written:
    scores edited afterwards (two rows swapped, so sample_auroc no longer matches them) are
    recomputed and refused; an edit that keeps them consistent is refused by the digest."""
    from protolib import checks

    matrix = scored[3]
    data = io.read_npz(matrix)
    calls = []
    monkeypatch.setattr(checks, "rowwise_auroc", lambda *a: calls.append(1) or (_ for _ in ()).throw(AssertionError))
    checks.read_scores(matrix)  # as written: no recomputation
    assert not calls
    monkeypatch.undo()
    scores = data["scores"].copy()
    scores[[0, 1]] = scores[[1, 0]]  # rows swapped, sample_auroc and digest left as they were
    _edit_matrix(matrix, scores=scores)
    with pytest.raises(InputMismatchError, match="sample_auroc is not the AUROC of the score rows"):
        checks.read_scores(matrix)
    _edit_matrix(matrix, scores=data["scores"] + 1.0)  # every score shifted: the same AUROCs
    with pytest.raises(InputMismatchError, match=r"do not match their digest.*snakemake --forcerun merge_scores"):
        checks.read_scores(matrix)


# ----------------------------------------------------------------------------- edited intermediates
def _edit_json(path: Path, **changes) -> None:
    """Edit a file as a user would in an editor (its digest left as it was)."""
    data = json.loads(Path(path).read_text())
    data.update(changes)
    Path(path).write_text(json.dumps(data))


@pytest.fixture
def selected(scored, tmp_path):
    """The ``scored`` class with greedy subsets and their evaluations."""
    config, split, features, matrix = scored
    subsets = pipeline.select_subsets(config, "digits", "knn", "greedy", split, matrix, features, tmp_path / "greedy")
    evals = [str(tmp_path / "eval" / p.name) for p in subsets]
    pipeline.evaluate_subsets(config, "digits", "knn", split, None, features, list(map(str, subsets)), evals)
    return config, split, features, subsets, evals


def test_a_subset_with_more_ids_than_its_M_is_refused(selected, tmp_path):
    """Subset ids edited to [479, 479, 476] for M = 1 were evaluated as n_train: 3."""
    config, split, features, subsets, _ = selected
    m1 = next(p for p in subsets if p.name == "M1_seed0.json")
    train = json.loads(Path(split).read_text())["train"]
    _edit_json(m1, ids=[train[0], train[0], train[1]])
    with pytest.raises(InputMismatchError, match=r"M1_seed0\.json: .*digest.*snakemake --forcerun select_greedy"):
        pipeline.evaluate_subsets(config, "digits", "knn", split, None, features, [str(m1)], [str(tmp_path / "e.json")])
    # written so by a job (a selector's bug): its size is checked all the same
    integrity.write_json(m1, {**json.loads(m1.read_text()), "ids": [train[0], train[0], train[1]]})
    with pytest.raises(InputMismatchError, match=r"repeats ids"):
        pipeline.evaluate_subsets(config, "digits", "knn", split, None, features, [str(m1)], [str(tmp_path / "e.json")])
    integrity.write_json(m1, {**json.loads(m1.read_text()), "ids": train[:3]})
    with pytest.raises(InputMismatchError, match=r"lists 3 ids for M = 1"):
        pipeline.evaluate_subsets(config, "digits", "knn", split, None, features, [str(m1)], [str(tmp_path / "e.json")])
    assert not (tmp_path / "e.json").exists()


def test_a_subset_or_evaluation_under_another_name_is_refused(selected, tmp_path):
    """An M = 5 subset copied over the M = 1 one (rc 0, the greedy 1 row gone from Table 1)."""
    config, split, features, subsets, evals = selected
    layout = Layout(str(tmp_path / "results"))
    m5 = next(p for p in subsets if p.name == "M5_seed0.json")
    as_m1 = Path(layout.subset("greedy", 1, 0, "digits", "knn", 3))
    as_m1.parent.mkdir(parents=True)
    as_m1.write_bytes(m5.read_bytes())
    with pytest.raises(InputMismatchError, match=r"M1_seed0\.json: holds M 5, but its path says 1 \(copied or renamed"):
        pipeline.evaluate_subsets(config, "digits", "knn", split, None, features, [str(as_m1)], [str(tmp_path / "e")])
    as_class_8 = Path(layout.evaluation_file("greedy", 5, 0, "digits", "knn", 8))
    as_class_8.parent.mkdir(parents=True)
    as_class_8.write_bytes(Path(next(e for e in evals if e.endswith("M5_seed0.json"))).read_bytes())
    with pytest.raises(InputMismatchError, match=r"holds class 3, but its path says 8 .*forcerun evaluate_greedy"):
        read_result(as_class_8)


def test_a_score_matrix_under_another_class_is_refused(scored, tmp_path):
    """Class 8's matrix copied over class 3's: Fig. 4 showed the same "best" images in both panels."""
    config, split, features, matrix = scored
    as_class_8 = tmp_path / "results" / "scores" / "digits" / "knn" / "8" / "matrix.npz"
    as_class_8.parent.mkdir(parents=True)
    as_class_8.write_bytes(Path(matrix).read_bytes())
    with pytest.raises(InputMismatchError, match=r"matrix\.npz: holds class 3, but its path says 8 .*merge_scores"):
        read_scores(as_class_8)


def test_an_edited_test_auroc_is_refused_by_the_tables(selected, tmp_path):
    """test_auroc edited to 0.999 in one evaluation file showed as 99.95 in Table 1, underlined."""
    from protolib import report

    evals = selected[4]
    report.write_evaluation_csv(evals, tmp_path / "evaluation.csv")  # as written: fine
    _edit_json(Path(evals[0]), test_auroc=0.999)
    with pytest.raises(
        InputMismatchError,
        match=rf"{evals[0]}: its content does not match its digest.*"
        r"snakemake --forcerun evaluate_greedy",
    ):
        report.write_evaluation_csv(evals, tmp_path / "evaluation2.csv")
    assert not (tmp_path / "evaluation2.csv").exists()


def test_a_split_or_prepared_data_edited_is_refused(scored, tmp_path):
    config, split, features, matrix = scored
    record = json.loads(Path(split).read_text())
    _edit_json(split, train=record["train"][:-1] + record["test"]["ids"][:1])
    with pytest.raises(InputMismatchError, match=r"split\.json: .*digest.*snakemake --forcerun split"):
        pipeline.select_subsets(config, "digits", "knn", "greedy", split, matrix, features, tmp_path / "out")
    data = io.read_npz(tmp_path / "digits.npz")
    data["images"] = data["images"].copy()
    data["images"][0, 0, 0] ^= 1
    io.write_npz(tmp_path / "digits.npz", **data)
    with pytest.raises(InputMismatchError, match=r"digits\.npz: .*digest.*snakemake --forcerun prepare"):
        pipeline.make_split(config, "digits", 3, tmp_path / "digits.npz", tmp_path / "split2.json")


def test_a_matrix_from_another_split_is_refused(scored, tmp_path):
    """Each file records the digests of the files it was made from; a reader that has both checks them."""
    config, split, features, matrix = scored
    other = tmp_path / "other_split.json"  # the same ids, written with other settings (so another digest)
    integrity.write_json(other, {**json.loads(Path(split).read_text()), "config": {"seed": 99}})
    with pytest.raises(InputMismatchError, match=r"matrix\.npz: was made from another split file than"):
        pipeline.select_subsets(config, "digits", "knn", "greedy", other, matrix, features, tmp_path / "out")


def test_a_subset_with_test_ids_is_refused_by_evaluation(scored, tmp_path):
    config, split, features, _ = scored
    test_ids = json.loads(Path(split).read_text())["test"]["ids"][:5]
    integrity.write_json(tmp_path / "subset.json", {"class": 3, "method": "greedy", "M": 5, "seed": 0, "ids": test_ids})
    with pytest.raises(InputMismatchError, match=r"subset\.json: subset ids .* are not training images of"):
        pipeline.evaluate_subsets(
            config,
            "digits",
            "knn",
            split,
            None,
            features,
            [str(tmp_path / "subset.json")],
            [str(tmp_path / "eval.json")],
        )
    assert not (tmp_path / "eval.json").exists()


def test_a_split_leaving_too_few_normal_test_images_is_refused(tmp_path):
    config = base(tmp_path)
    config["datasets"]["digits"]["split"]["train"] = 0.99
    config = validate(config)
    data = tmp_path / "digits.npz"
    with pytest.raises(ValueError, match=r"split\.train = 0\.99 takes \d+ for training and leaves 1 normal images"):
        pipeline.prepare_dataset(config, "digits", data)  # the first job that knows the class sizes
    assert not data.exists()


def test_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        io.write_json(tmp_path / "a.json", {"x": 1})
        io.write_npz(tmp_path / "b.npz", x=np.zeros(2))
    finally:
        os.umask(old)
    assert oct((tmp_path / "a.json").stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "b.npz").stat().st_mode & 0o777) == oct(0o644)


# ----------------------------------------------------------------------------- image reading
def test_xray_files_are_windowed_per_scan_as_their_dicom_pixels(tmp_path):
    """RSNA/CheXpert image files: 16-bit data windowed to each scan's own range, as a DICOM's
    pixels are; one brighter pixel (4096 over a 4000 maximum) no longer darkens the scan 4x."""
    from protolib.data.images import read_windowed, to_uint8

    rng = np.random.default_rng(0)
    a = rng.integers(0, 4001, (32, 32)).astype(np.uint16)
    b = a.copy()
    b[0, 0] = 4096
    eight = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    for name, array in (("a.png", a), ("b.png", b), ("eight.png", eight)):
        Image.fromarray(array).save(tmp_path / name)
    ra, rb = read_windowed(tmp_path / "a.png"), read_windowed(tmp_path / "b.png")
    assert np.array_equal(ra, to_uint8(a)) and np.array_equal(rb, to_uint8(b))
    assert np.abs(ra.astype(int) - rb.astype(int))[1:, 1:].max() <= 7
    assert np.array_equal(read_windowed(tmp_path / "eight.png"), eight)  # 8-bit: as it is


def test_sixteen_bit_png_with_twelve_bit_data_keeps_its_levels(tmp_path):
    """protolib rank's reading: 12-bit data in a 16-bit PNG is scaled by 4095, not 65535."""
    from protolib.rank.folders import read_folder

    ramp = np.tile(np.arange(0, 4096, 16, dtype=np.uint16), (256, 1))  # 256 levels of 12-bit data
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "black.png")
    image = read_folder(tmp_path, 256, progress=False).images[1]
    assert image.max() == 254 and len(np.unique(image)) > 200


def test_deep_images_of_one_folder_share_one_scale(tmp_path):
    """The folder loader: a dark and a bright image stay dark and bright (no per-image
    stretching), int32 and float alike."""
    from protolib.data import load_dataset

    ramp = np.tile(np.arange(16), (16, 1))
    for dtype in (np.int32, np.float32):
        root = tmp_path / np.dtype(dtype).name
        (root / "train").mkdir(parents=True)
        Image.fromarray((90 + ramp).astype(dtype)).save(root / "train" / "a_dark.tif")
        Image.fromarray((900 + 10 * ramp).astype(dtype)).save(root / "train" / "b_bright.tif")
        images = load_dataset({"loader": "folder", "root": str(root)}).images
        assert images[0].max() < images[1].min() / 5, dtype


def test_rgba_with_content_only_in_alpha_is_not_blank(tmp_path):
    from protolib.data.images import read_image

    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[2:8, 2:8, 3] = 255  # a black square drawn only by its opacity
    Image.fromarray(rgba).save(tmp_path / "glyph.png")
    image = read_image(tmp_path / "glyph.png")
    assert image.max() == 255 and image.shape == (10, 10) and image[5, 5] == 255 and image[0, 0] == 0


def test_folder_loader_and_rank_read_a_file_alike(tmp_path):
    from protolib.data import load_dataset
    from protolib.rank.folders import read_folder

    (tmp_path / "train" / "sub").mkdir(parents=True)
    Image.fromarray(np.tile(np.arange(0, 4096, 256, dtype=np.uint16), (16, 1))).save(tmp_path / "train" / "a.png")
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "train" / "sub" / "b.bmp")
    loaded = load_dataset({"loader": "folder", "root": str(tmp_path)})
    ranked = read_folder(tmp_path / "train", 16, progress=False)
    assert ranked.names == ["a.png", "sub/b.bmp"]
    assert np.array_equal(loaded.images, ranked.images)


# ----------------------------------------------------------------------------- protolib rank
def _rank(*args, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "protolib", "rank", "-q", *map(os.fsdecode, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


def _images(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


RANK_CASES = {
    "out inside the input folder": (lambda t: ["imgs", "--out", "imgs/ranked"], "is inside the input folder"),
    "out is the input folder": (lambda t: ["imgs", "--out", "imgs"], "is inside the input folder"),
    "out an existing file": (
        lambda t: (t.joinpath("afile").write_text("x"), ["imgs", "--out", "afile"])[1],
        "--out 'afile' is an existing file",
    ),
    "seed -1": (lambda t: ["imgs", "--out", "o", "--seed", "-1"], "argument --seed: must be 0 or more, got -1"),
    "one image": (lambda t: [_images(t / "one", 1).name, "--out", "o", "-M", "1"], "ranking needs at least 2"),
    "unknown model": (
        lambda t: ["imgs", "--out", "o", "--model", "foo"],
        "unknown model 'foo'; choose from fae, knn, panda, patchcore, rd",
    ),
    "weights file missing": (
        lambda t: ["imgs", "--out", "o", "--weights", "/nonexistent"],
        "--weights: file '/nonexistent' not found",
    ),
    "weights file of garbage": (
        lambda t: (t.joinpath("w.pt").write_bytes(bytes(range(256)) * 8), ["imgs", "--out", "o", "--weights", "w.pt"])[
            1
        ],
        "--weights: w.pt: not a PyTorch state_dict file (torch cannot read it",
    ),
    "seed 2**32": (
        lambda t: ["imgs", "--out", "o", "--seed", "4294967296", "--pca", "5"],
        "argument --seed: must be at most 4294967295 (2**32 - 1), got 4294967296",
    ),
    "--set a value that is not YAML": (
        lambda t: ["imgs", "--out", "o", "--set", "k=["],
        "argument --set: k: '[' is not a YAML value (expected the node content",
    ),
    "--set batch_size=0": (lambda t: ["imgs", "--out", "o", "--set", "batch_size=0"], "error: --set batch_size: use"),
    "non-UTF-8 file name": (
        lambda t: (
            t.joinpath("imgs", os.fsdecode(b"bad\xff.png")).write_bytes((t / "imgs" / "00.png").read_bytes()),
            ["imgs", "--out", "o"],
        )[1],
        "is not valid UTF-8; rename it",
    ),
}


@pytest.mark.parametrize("case", list(RANK_CASES))
def test_rank_checks_its_input_before_any_compute(case, tmp_path):
    _images(tmp_path / "imgs", 6)
    args = RANK_CASES[case][0](tmp_path)
    run = _rank(*args, cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert RANK_CASES[case][1] in run.stderr
    assert "embedding" not in run.stderr and not (tmp_path / "o").exists()


def _read_only(t: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A folder without write permission; as root (whom the kernel lets write anyway) creating a
    file in it is refused the way the kernel refuses anyone else."""
    folder = t / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.open

        def refused(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and Path(path).parent.resolve() == folder.resolve():
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refused)
    return "ro"


OUT_CASES = {
    "below a file": (
        lambda t, mp: (t.joinpath("afile").write_text("x"), "afile/sub")[1],
        "--out 'afile/sub': 'afile' is a file, not a folder",
    ),
    "a dangling link": (
        lambda t, mp: (os.symlink("missing", t / "dangling"), "dangling")[1],
        "--out 'dangling': 'dangling' is a symbolic link to 'missing', which does not exist",
    ),
    "in /proc": (lambda t, mp: "/proc/x", "--out '/proc/x': cannot create or write to it (No such file or directory)"),
    "read-only": (_read_only, "--out 'ro': cannot create or write to it (Permission denied)"),
    "empty": (lambda t, mp: "", "--out is empty; name an output folder"),
}


@pytest.mark.parametrize("case", list(OUT_CASES))
def test_rank_refuses_an_unusable_out_before_reading_any_image(case, tmp_path, monkeypatch, capsys):
    """These came as tracebacks after every image was decoded (11 s on 150 large JPEGs), and an
    empty --out filled the current folder."""
    from protolib.cli import main

    _images(tmp_path / "imgs", 6)
    monkeypatch.chdir(tmp_path)
    out = OUT_CASES[case][0](tmp_path, monkeypatch)
    before = sorted(os.listdir(tmp_path))

    def no_reading(*args, **kwargs):
        raise AssertionError("an image folder was read before --out was checked")

    monkeypatch.setattr("protolib.rank.folders.scan_folder", no_reading)
    assert main(["rank", "-q", "imgs", "--out", out]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {OUT_CASES[case][1]}"), err
    assert "choose" in err[0] or "name an output folder" in err[0]  # says what to do
    assert sorted(os.listdir(tmp_path)) == before


def test_rank_reports_dangling_links_and_loops_in_the_summary(tmp_path):
    folder = _images(tmp_path / "imgs", 6)
    os.symlink("missing.png", folder / "dangling.png")
    os.symlink("loop.png", folder / "loop.png")
    run = _rank("imgs", "--out", "o", "-M", "2", "--no-contact-sheet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    skipped = {
        Path(s["file"]).name: s["reason"] for s in json.loads((tmp_path / "o" / "summary.json").read_text())["skipped"]
    }
    assert "dangling symbolic link" in skipped["dangling.png"] and skipped["loop.png"] == "symbolic link loop"


def test_registry_names_lazy_entries_in_its_error():
    from protolib.models import DETECTORS

    with pytest.raises(KeyError, match="registered: .*fae.*knn.*panda.*patchcore"):
        DETECTORS.get("foo")


# ----------------------------------------------------------------------------- caps and class sizes
PREPARE_CASES = {  # what only the class sizes and labels decide: refused by the prepare job
    "candidates above the training images": (
        lambda c: c["datasets"]["digits"].update(candidates=500),
        r"datasets\.digits\.candidates: 500 is more than the 122 training images class '3' gets .*; at most 122",
    ),
    "split.train 170": (
        lambda c: c["datasets"]["digits"]["split"].update(train=170),
        r"datasets\.digits\.split\.train: class '8' has 174 images; "
        r"split\.train = 170 takes 170 for training and leaves 2 ",
    ),
    "split.train 0.99": (
        lambda c: c["datasets"]["digits"]["split"].update(train=0.99),
        r"datasets\.digits\.split\.train: .*split\.train = 0\.99 takes \d+ for training and leaves 1 normal",
    ),
    "anomalies_per_other_class 100": (
        lambda c: c["datasets"]["digits"]["split"].update(anomalies_per_other_class=100),
        r"datasets\.digits\.split\.anomalies_per_other_class: 100 asks for \d+ anomalies .* but class 0 has 178 ",
    ),
    "k above the training images": (
        lambda c: c["models"]["knn"].update(k=200),
        r"models\.knn\.k: 200 is more than the 122 training images class '3' of digits gets; at most 122",
    ),
    "manual ids of another class": (
        lambda c: _manual(c, {3: [0, 1, 2, 3, 4], 8: [1, 2, 3, 4, 5]}),
        r"selection\.manual\.digits\.3: ids 0 \(class '0'\), 1 \(class '1'\).* are not training images of class '3'",
    ),
}


@pytest.mark.parametrize("case", list(PREPARE_CASES))
def test_what_the_class_sizes_decide_is_refused_by_the_prepare_job(case, tmp_path):
    config = base(tmp_path)
    config["datasets"]["digits"]["candidates"] = 30
    mutate, pattern = PREPARE_CASES[case]
    mutate(config)
    config = validate(config)
    data = tmp_path / "digits.npz"
    with pytest.raises(ValueError, match=pattern):
        pipeline.prepare_dataset(config, "digits", data)
    assert not data.exists()


def _pool_folder(root: Path, normal: int, anomalous: int) -> Path:
    """A folder dataset (``normal/``, ``anomalous/``) of real digit scans, 3s normal, 8s anomalous."""
    from sklearn.datasets import load_digits  # here: only these tests build a folder dataset

    digits = load_digits()
    for sub, label, n in (("normal", 3, normal), ("anomalous", 8, anomalous)):
        (root / sub).mkdir(parents=True)
        for i, image in enumerate(digits.images[digits.target == label][:n]):
            Image.fromarray((image * 255 / 16).astype(np.uint8)).save(root / sub / f"{i:03d}.png")
    return root


def _folder_config(tmp_path: Path, candidates: int, chunk_size: int) -> dict:
    """One folder dataset whose loader takes every training image when ``candidates`` asks for more."""
    config = base(tmp_path)
    config["datasets"] = {
        "mine": {
            "loader": "folder",
            "root": str(_pool_folder(tmp_path / "mine", 40, 12)),
            "split": {"train": 0.6},
            "candidates": candidates,
        }
    }
    config["runs"] = [{"dataset": "mine", "model": "knn"}]
    config["scores"] = {"chunk_size": chunk_size}
    config["selection"]["M"] = [1]
    return validate(config)


def test_score_jobs_share_a_capped_K_so_none_is_empty(tmp_path):
    """candidates 100 with chunk_size 30 plans 4 score jobs; the folder's 24 training images
    (60 % of 40) make K = 24, dealt 6 per job, and the merged matrix is the definition's."""
    config = _folder_config(tmp_path, candidates=100, chunk_size=30)
    data, split, features = tmp_path / "mine.npz", tmp_path / "split.json", tmp_path / "pixels.npy"
    pipeline.prepare_dataset(config, "mine", data)
    pipeline.make_split(config, "mine", 0, data, split)
    pipeline.make_features(config, "mine", "knn", data, features, tmp_path / "pixels.json")
    chunks = [str(tmp_path / f"chunk{c}.npz") for c in range(pipeline.n_chunks(config, "mine"))]
    for c, path in enumerate(chunks):
        pipeline.score_chunk(config, "mine", "knn", c, split, None, features, path)
    assert [len(integrity.read_npz(p, "score_chunk")["candidates"]) for p in chunks] == [6, 6, 6, 6]
    matrix = tmp_path / "matrix.npz"
    pipeline.merge_scores(config, "mine", "knn", split, chunks, matrix)
    loaded = load_split(split)
    detector, inputs = pipeline._detector_and_inputs(config, "knn", None, features)
    whole = single_sample_scores(detector, inputs, loaded.candidates, inputs, loaded.val_ids)
    np.testing.assert_array_equal(integrity.read_npz(matrix, "merge_scores")["scores"], whole)


def test_more_score_jobs_than_a_capped_K_is_refused_by_the_prepare_job(tmp_path):
    config = _folder_config(tmp_path, candidates=100, chunk_size=4)  # 25 jobs for K = 24
    data = tmp_path / "mine.npz"
    with pytest.raises(ValueError) as err:
        pipeline.prepare_dataset(config, "mine", data)
    assert str(err.value) == (
        "datasets.mine.candidates: 100 makes 25 score jobs (scores.chunk_size = 4), but class 'normal' has K = 24 "
        "candidates (all its training images), fewer than one per job; set candidates to at most 96 or "
        "scores.chunk_size to at least 5"
    )
    assert not data.exists()


@pytest.mark.parametrize(
    ("method", "key", "value", "largest"),
    [
        ("gmm", "pca_components", 1000, 64),  # capped to 64 without a word
        ("typical", "neighbours", 10000, 121),  # ran and was recorded as 10000
    ],
)
def test_a_selector_setting_above_what_the_pool_allows_is_refused(method, key, value, largest, scored, tmp_path):
    config, split, features, matrix = scored
    config = copy.deepcopy(config)
    config["selection"][method] = {key: value}
    with pytest.raises(ValueError, match=rf"selection\.{method}\.{key}: {value} is more than .*; at most {largest}$"):
        pipeline.select_subsets(config, "digits", "knn", method, split, matrix, features, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rank_records_the_pca_components_it_used(tmp_path):
    _images(tmp_path / "imgs", 12)
    run = _rank("imgs", "--out", "o", "-M", "2", "--pca", "1000", "--no-contact-sheet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["settings"]["pca"] == 12 if "settings" in summary else summary["pca"] == 12
    assert "--pca 1000 is more than" in run.stderr


# ----------------------------------------------------------------------------- a run on a held folder
def test_a_run_from_another_working_directory_on_a_held_results_folder_says_so(tmp_path):
    """Snakemake's locks are per working directory: a second run from elsewhere wrote into the
    first's files (one evaluation of k = 2 among 25 of k = 5, a table of neither)."""
    config = base(tmp_path)
    path = write_config(tmp_path / "study.yaml", config)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys, time; from protolib import run_lock; "
            f"print(run_lock.hold({config['results']!r}), flush=True); time.sleep(120)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "None"  # it holds the folder
        run = snakemake("--cores", "1", "--configfile", str(path), workdir=tmp_path / "elsewhere")
        assert run.returncode != 0
        assert (
            f"error: another snakemake run holds the results folder {config['results']!r} (pid {holder.pid} on "
        ) in run.stderr
        assert "Traceback" not in run.stderr and sorted(os.listdir(config["results"])) == [".snakemake-run.lock"]
    finally:
        holder.kill()
        holder.wait()
    from protolib import run_lock  # here: the lock is this process's from now on

    assert run_lock.hold(config["results"]) is None and run_lock.hold(config["results"]) is None  # held once


def test_a_second_run_on_a_held_results_folder_says_so(tmp_path):
    """Snakemake's IncompleteFilesException advised --rerun-incomplete (which would rerun the
    other run's jobs under it); the lock that other run keeps names the folder it holds."""
    from protolib.run_lock import lock_holding, locking_run

    config = base(tmp_path)
    path = write_config(tmp_path / "study.yaml", config)
    workdir = tmp_path / "work"
    (workdir / ".snakemake" / "locks").mkdir(parents=True)
    assert lock_holding(config["results"], workdir) is None
    lock = workdir / ".snakemake" / "locks" / "0.output.lock"
    lock.write_text(f"{tmp_path / 'elsewhere' / 'x.json'}\n")  # another study's run: not this folder
    assert lock_holding(config["results"], workdir) is None
    lock.write_text(f"{config['results']}/fashion_mnist/splits/fashion_mnist/3.json\n")  # a study inside this one's
    assert lock_holding(config["results"], workdir) is None
    lock.write_text(f"{config['results']}/splits/digits/3.json\n")
    assert lock_holding(config["results"], workdir) == lock
    run = snakemake("--cores", "1", "--configfile", str(path), workdir=workdir)
    assert run.returncode != 0 and "Traceback" not in run.stderr and "rerun-incomplete" not in run.stderr
    assert f"another snakemake run holds the results folder {config['results']!r}" in run.stderr
    assert "snakemake --unlock" in run.stderr and not Path(config["results"]).exists()
    assert (
        snakemake("-n", "--cores", "1", "--configfile", str(path), workdir=workdir).returncode == 0
    )  # a dry run looks
    for looking in (["-n"], ["-np"], ["-S"], ["-l"], ["--dag"], ["--rulegraph"], ["--list-changes", "params"]):
        assert not locking_run(["--cores", "1", *looking]), looking  # Snakemake takes no lock for these
    assert locking_run(["--cores", "1", "-p"]) and locking_run(["--cores", "2", "table1"])


# ----------------------------------------------------------------------------- the shared study
@pytest.fixture
def study_in_use():
    """integrity.use_study as a job sets it (conftest resets it after each test)."""
    return integrity.use_study


def test_every_intermediate_of_a_study_carries_a_digest_that_its_reader_checks(small_study, study_in_use):
    """...and every one was made under the study's settings (a job reads it against them)."""
    study_in_use(load(small_study.path))
    results = small_study.results
    checked, kinds = 0, set()
    for path in sorted(results.rglob("*")):
        part = path.relative_to(results).parts[0]
        if part not in ("data", "splits", "features", "scores", "subsets", "eval", "transfer") or not path.is_file():
            continue
        if path.suffix == ".npz":
            integrity.read_npz(path, None)
        elif path.suffix == ".npy":
            integrity.read_features(path)
        elif path.suffix == ".json" and part in ("subsets", "eval", "transfer") and "seed" in path.name:
            (read_subset_record if part == "subsets" else read_result)(path)  # its content is what its path says
        elif path.suffix == ".json":
            integrity.read_json(path, None)
        elif path.suffix == ".csv":
            integrity.read_table(path, None)  # transfer/evaluation.csv, through its .json
        else:
            continue
        checked, kinds = checked + 1, kinds | {part}
    assert kinds == {"data", "splits", "features", "scores", "subsets", "eval", "transfer"} and checked > 50
    integrity.read_table(results / "evaluation.csv", None)


def _typed_in(path: Path, record: dict) -> None:
    record["test_auroc"] = 0.999
    path.write_text(json.dumps(record))


def _from_seed_1(path: Path, record: dict) -> None:
    """As a study of seed 1 writes it, digest and all, then copied in."""
    record["config"]["seed"] = 1
    integrity.write_json(path, record, record["integrity"]["made_from"])


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (_typed_in, "its content does not match its digest"),
        (_from_seed_1, "was made under other settings than this study's: seed: 1 in the file, 0 in the config"),
    ],
)
def test_an_edited_evaluation_stops_the_table_job_with_one_line(edit, problem, small_study):
    """A job's error is one line on the terminal, naming the file and the command that rebuilds
    it, and the log that holds the traceback; Table 1 is not rewritten."""
    layout = Layout(small_study.results)
    edited = Path(layout.evaluation_file("greedy", 1, 0, "digits", "knn", 3))
    table_path = Path(layout.tables, "table1.csv")
    original, table = edited.read_bytes(), table_path.read_bytes()
    try:
        edit(edited, json.loads(original))
        run = snakemake("table1", "--cores", "1", "--configfile", str(small_study.path), workdir=small_study.workdir)
        assert run.returncode != 0
        assert "Traceback" not in run.stderr and 'File "' not in run.stderr
        line = next(line for line in run.stderr.splitlines() if line.startswith("error: "))
        assert f"{edited}: {problem}" in line
        assert "`snakemake --forcerun evaluate_greedy`" in line
        assert f"(traceback: {layout.log('evaluation_table')})" in line
        assert "Traceback" in Path(layout.log("evaluation_table")).read_text()
        assert table_path.read_bytes() == table
    finally:  # the shared study as it was: the failed job's evaluation.csv is rebuilt
        edited.write_bytes(original)
        rebuilt = snakemake(
            "table1", "--cores", "1", "--configfile", str(small_study.path), workdir=small_study.workdir
        )
        assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
        assert table_path.read_bytes() == table


def test_a_split_of_another_study_is_refused_naming_the_setting(scored, study_in_use, tmp_path):
    """A split copied in from a study of another seed, its digest intact (a job's own output)."""
    config, split, features, matrix = scored
    other = validate({**copy.deepcopy(config), "seed": 1})
    foreign = tmp_path / "other_split.json"
    pipeline.make_split(other, "digits", 3, tmp_path / "digits.npz", foreign)
    study_in_use(config)
    pipeline.score_chunk(config, "digits", "knn", 0, split, None, features, tmp_path / "ours.npz")  # its own: read
    with pytest.raises(InputMismatchError) as err:
        pipeline.score_chunk(config, "digits", "knn", 0, foreign, None, features, tmp_path / "c.npz")
    assert str(err.value).startswith(
        f"{foreign}: was made under other settings than this study's: seed: 1 in the file, 0 in the config; "
        "rebuild it with `snakemake --forcerun split`"
    )
    assert not (tmp_path / "c.npz").exists()


def test_a_subset_of_other_selection_settings_is_refused(scored, study_in_use, tmp_path):
    config, split, features, matrix = scored
    other = validate(
        {**copy.deepcopy(config), "selection": {**config["selection"], "evolutionary": {"generations": 3}}}
    )
    pipeline.select_subsets(other, "digits", "knn", "evolutionary", split, matrix, features, tmp_path / "evo")
    study_in_use(config)
    subset = sorted((tmp_path / "evo").glob("M1_*.json"))[0]
    with pytest.raises(InputMismatchError, match=r"selection\.evolutionary\.generations: 3 in the file, 15 in the"):
        pipeline.evaluate_subsets(config, "digits", "knn", split, None, features, [str(subset)], [str(tmp_path / "e")])


def test_manual_ids_changed_after_prepare_are_refused_by_the_select_job_naming_the_key(scored, tmp_path):
    """The prepare job does not rerun when only selection.manual changes: select_manual checks too."""
    config, split, features, matrix = scored
    config = copy.deepcopy(config)
    _manual(config, {3: [0, 1, 2, 3, 4], 8: [1, 2, 3, 4, 5]})
    config = validate(config)
    with pytest.raises(ValueError, match=r"selection\.manual\.digits\.3: ids 0 \(not a training id of the split\)"):
        pipeline.select_subsets(config, "digits", "knn", "manual", split, matrix, features, tmp_path / "out")
    assert not (tmp_path / "out").exists()
