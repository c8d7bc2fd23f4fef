"""docs/extending.md: a detector and a selector added from a module outside protolib (registry
only, named by the config's ``plugins`` key) run through the whole workflow -- the Snakefile and
every job are separate processes, and each imports the plugin module itself -- and the SLURM
profile gives the new evaluate rule a GPU like the built-in ones."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from protolib.config import ConfigError, validate
from protolib.data import load_dataset
from protolib.layout import Layout
from tests.helpers import REPO, small_config, snakemake, write_config

PLUGIN = "tests.toy_plugins"


def toy_config(results) -> dict:
    return small_config(
        results,
        plugins=[PLUGIN],
        datasets={"digits": {"classes": [3], "split": {"train": 0.6667}, "candidates": 12}},
        models={"toy": {"detector": "toy_mean", "backbone": "pixels"}},
        runs=[{"dataset": "digits", "model": "toy"}],
        selection={"M": [1, 3], "methods": ["greedy", "toy_first"]},
    )


@pytest.fixture
def plugin_in_process():
    """The plugin imported here, and forgotten again afterwards: the end-to-end test checks that
    the workflow's processes import it themselves."""
    from protolib.figures.registry import FIGURES
    from protolib.models import DETECTORS
    from protolib.selection import SELECTORS

    yield
    DETECTORS._items.pop("toy_mean", None)
    SELECTORS._items.pop("toy_first", None)
    FIGURES._items.pop("toy_auroc_hist", None)
    sys.modules.pop(PLUGIN, None)


def test_a_plugins_settings_are_validated_like_the_built_in_ones(tmp_path, plugin_in_process):
    config = toy_config(tmp_path / "results")
    config["models"]["toy"]["power"] = 1.0
    config["selection"]["toy_first"] = {"skip": 2}
    checked = validate(copy.deepcopy(config))
    from protolib.models import make_detector
    from protolib.selection import make_selector

    assert make_detector(checked["models"]["toy"]).power == 1.0
    assert make_selector("toy_first", checked["selection"]).skip == 2

    config["models"]["toy"].update(k=2, power="high")
    config["selection"]["toy_first"]["skp"] = 1
    with pytest.raises(ConfigError) as err:
        validate(config)
    assert "models.toy.power: 'high' is not of type integer or number, as detector 'toy_mean' declares it" in str(
        err.value
    )
    assert (
        "models.toy.k: not a setting of detector 'toy_mean'; allowed: backbone, batch_size, image_size, power, "
        "precision, weights" in str(err.value)
    )
    assert "selection.toy_first.skp: not a setting of selection method 'toy_first'; allowed: skip" in str(err.value)


def test_an_unimportable_plugin_is_named(tmp_path):
    config = toy_config(tmp_path / "results")
    config["plugins"] = ["tests.no_such_plugin"]
    with pytest.raises(ConfigError, match=r"plugins\[0\]: cannot import module 'tests.no_such_plugin'"):
        validate(config)


@pytest.mark.slow
def test_a_toy_detector_and_selector_run_through_the_workflow(tmp_path):
    assert PLUGIN not in sys.modules  # every registration below happens in Snakemake's processes
    config = toy_config(tmp_path / "results")
    path = write_config(tmp_path / "toy.yaml", config)
    out = snakemake("table1", "--cores", "2", "--configfile", str(path), workdir=tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    results = tmp_path / "results"
    frame = pd.read_csv(results / "evaluation.csv")
    assert set(zip(frame.method, frame.M)) == {
        ("full", frame.M.max()),
        *((m, M) for m in ("greedy", "toy_first") for M in (1, 3)),
    }

    # the toy selector's subsets are the first M candidates, and the toy detector's test AUROC
    # is that of the distance to the subset's mean image, computed here independently
    layout = Layout(results)
    split = json.loads(Path(layout.split("digits", 3)).read_text())
    images = load_dataset({"loader": "digits"}).images.reshape(-1, 64).astype(np.float64)
    test_ids = np.asarray(split["test"]["ids"])
    for M in (1, 3):
        subset = json.loads(Path(layout.subset("toy_first", M, 0, "digits", "toy", 3)).read_text())
        assert subset["ids"] == split["candidates"][:M]
        scores = ((images[test_ids] - images[subset["ids"]].mean(0)) ** 2).sum(1)
        row = frame[(frame.method == "toy_first") & (frame.M == M)]
        assert row.test_auroc.item() == pytest.approx(roc_auc_score(split["test"]["labels"], scores), abs=1e-8)
    assert "toy_first 3" in Path(layout.tables, "table1.md").read_text()
    job = {"dataset": "digits", "model": "toy", "cls": 3}  # Layout.log/benchmark name wildcards: filled here
    assert Path(layout.log("evaluate_toy_first", *job).format(**job)).exists()
    assert Path(layout.benchmark("evaluate_toy_first", *job).format(**job)).exists()


@pytest.mark.slow
def test_the_slurm_profile_gives_the_new_evaluate_rule_a_gpu(tmp_path):
    """Planned with the SLURM profile (a dry run: nothing is submitted), `device: auto`."""
    config = toy_config(tmp_path / "results")
    config["device"] = "auto"
    path = write_config(tmp_path / "toy.yaml", config)
    out = snakemake(
        "-n",
        "--profile",
        str(REPO / "workflow" / "profiles" / "slurm"),
        "--cores",
        "2",
        "--configfile",
        str(path),
        workdir=tmp_path,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    from tests.test_profiles import planned_resources

    planned = planned_resources(log)
    assert [res.get("gpu") for res in planned["evaluate_toy_first"]] == ["1"], planned.get("evaluate_toy_first")
    assert [res.get("gpu") for res in planned["evaluate_greedy"]] == ["1"]
    assert all("gpu" not in res for res in planned["select_toy_first"])
    # and the runtime of every evaluate_<method> rule (runtime_minutes.evaluate); CPU rules: the profile's
    assert [res.get("runtime") for res in planned["evaluate_toy_first"]] == ["120"]
    assert {res.get("runtime") for res in planned["select_toy_first"]} == {"60"}


# ----------------------------------------------------------------------------- figures and tables
FIGURE = "toy_auroc_hist"


@pytest.fixture
def figure_plugin():
    """The toy figure registered in this process, and forgotten again afterwards."""
    import importlib

    from protolib.figures.registry import FIGURES
    from protolib.models import DETECTORS
    from protolib.selection import SELECTORS

    importlib.import_module(PLUGIN)
    yield FIGURES
    FIGURES._items.pop(FIGURE, None)
    DETECTORS._items.pop("toy_mean", None)
    SELECTORS._items.pop("toy_first", None)
    sys.modules.pop(PLUGIN, None)


class _Paths:
    """A results layout that names each file by what it is, to check what a figure reads."""

    evaluation = "EVALUATION"
    transfer = "TRANSFER"

    def __getattr__(self, kind):
        return lambda *values: f"{kind}:" + "/".join(map(str, values))


def test_every_registered_figure_plans_on_the_default_study_and_has_a_caption():
    from protolib.config import load
    from protolib.figures.plan import plan_report
    from protolib.figures.registry import FIGURES

    planned = {p.name: p for p in plan_report(load(REPO / "config.yaml"), {}, _Paths())}
    assert set(planned) == set(FIGURES.names()) >= {"table1", "table2", "tables", *(f"fig{i}" for i in range(1, 8))}
    for name, p in planned.items():
        assert p.outputs, name
        assert Path(p.figure.caption or REPO / "workflow" / "report" / f"{name}.rst").is_file(), name
    assert planned["fig3"].inputs["subsets"] == [f"subset:{m}/5/0/digits/knn/0" for m in ("greedy", "evolutionary")]
    assert planned["fig4"].inputs["scores"] == [f"scores:digits/knn/{c}" for c in range(10)]
    assert planned["fig6"].inputs == {"transfer": []} and planned["fig6"].params == {"entries": []}


def test_a_report_key_must_name_a_registered_figure(tmp_path, figure_plugin):
    config = toy_config(tmp_path / "results")
    config["report"] = {"fig8": {"class": 3}, FIGURE: {"class": 3}}
    with pytest.raises(ConfigError) as err:
        validate(copy.deepcopy(config))
    assert "report.fig8: not a registered figure or table; registered: fig1, fig2" in str(err.value)
    assert f"report.{FIGURE}" not in str(err.value)  # the plugin's figure is registered
    del config["report"]["fig8"]
    config["report"][FIGURE] = {"class": 5}
    with pytest.raises(ConfigError, match=rf"report.{FIGURE}.class: 5 is not a class the study runs"):
        validate(config)


@pytest.mark.slow
def test_a_plugin_figure_is_a_target_by_name_and_in_the_report(tmp_path):
    assert PLUGIN not in sys.modules  # the figure is registered by Snakemake's processes
    config = toy_config(tmp_path / "results")
    config["report"] = {FIGURE: {"class": 3}}
    path = write_config(tmp_path / "toy.yaml", config)
    out = snakemake(FIGURE, "--cores", "2", "--configfile", str(path), workdir=tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    layout = Layout(tmp_path / "results")
    assert sorted(p.name for p in Path(layout.figures).iterdir()) == [f"{FIGURE}{e}" for e in (".json", ".pdf", ".png")]
    assert not Path(layout.tables).exists()  # built by name: that figure and what it needs only

    # the sidecar's values are the AUROCs of the score matrix's rows, computed here independently
    matrix = np.load(layout.scores("digits", "toy", 3))
    expected = sorted(roc_auc_score(matrix["val_labels"], row) for row in matrix["scores"])
    shown = json.loads(Path(layout.figures, f"{FIGURE}.json").read_text())
    assert shown["sample_auroc"] == pytest.approx(expected, abs=1e-12) and shown["choice"]["classes"] == [3]

    report = tmp_path / "report.html"
    out = snakemake(FIGURE, "--report", str(report), "--configfile", str(path), workdir=tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    html = report.read_text(encoding="utf-8")
    assert f"{FIGURE}.png" in html and "Toy: single-sample AUROCs" in html  # the figure, its title
    assert "Histogram of the single-sample val AUROCs" in html  # and its caption (tests/toy_figure.rst)
