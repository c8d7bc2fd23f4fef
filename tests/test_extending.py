"""README "Extending": a detector and a selector added from a module outside protolib (registry
only, named by the config's ``plugins`` key) run through the whole workflow -- the Snakefile and
every job are separate processes, and each imports the plugin module itself -- and the SLURM
profile gives the new evaluate rule a GPU like the built-in ones."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from protolib.config import ConfigError, validate
from protolib.data import load_dataset
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
    from protolib.models import DETECTORS
    from protolib.selection import SELECTORS

    yield
    DETECTORS._items.pop("toy_mean", None)
    SELECTORS._items.pop("toy_first", None)
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
    assert "models.toy.power: 'high' is not of type integer or number, as detector 'toy_mean' declares it" in str(err.value)
    assert "models.toy.k: not a setting of detector 'toy_mean'; allowed: backbone, batch_size, image_size, power, " \
           "precision, weights" in str(err.value)
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
    assert set(zip(frame.method, frame.M)) == {("full", frame.M.max()), *((m, M) for m in ("greedy", "toy_first") for M in (1, 3))}

    # the toy selector's subsets are the first M candidates, and the toy detector's test AUROC
    # is that of the distance to the subset's mean image, computed here independently
    split = json.loads((results / "splits" / "digits" / "3.json").read_text())
    images = load_dataset({"loader": "digits"}).images.reshape(-1, 64).astype(np.float64)
    test_ids = np.asarray(split["test"]["ids"])
    for M in (1, 3):
        subset = json.loads((results / "subsets" / "digits" / "toy" / "3" / "toy_first" / f"M{M}_seed0.json").read_text())
        assert subset["ids"] == split["candidates"][:M]
        scores = ((images[test_ids] - images[subset["ids"]].mean(0)) ** 2).sum(1)
        row = frame[(frame.method == "toy_first") & (frame.M == M)]
        assert row.test_auroc.item() == pytest.approx(roc_auc_score(split["test"]["labels"], scores), abs=1e-8)
    assert "toy_first 3" in (results / "tables" / "table1.md").read_text()
    assert (results / "logs" / "evaluate_toy_first" / "digits" / "toy" / "3.log").exists()
    assert (results / "benchmarks" / "evaluate_toy_first" / "digits" / "toy" / "3.tsv").exists()


@pytest.mark.slow
def test_the_slurm_profile_gives_the_new_evaluate_rule_a_gpu(tmp_path):
    """Planned with the SLURM profile (a dry run: nothing is submitted), `device: auto`."""
    config = toy_config(tmp_path / "results")
    config["device"] = "auto"
    path = write_config(tmp_path / "toy.yaml", config)
    out = snakemake("-n", "--profile", str(REPO / "workflow" / "profiles" / "slurm"), "--cores", "2",
                    "--configfile", str(path), workdir=tmp_path)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    from tests.test_profiles import planned_resources

    planned = planned_resources(log)
    assert [res.get("gpu") for res in planned["evaluate_toy_first"]] == ["1"], planned.get("evaluate_toy_first")
    assert [res.get("gpu") for res in planned["evaluate_greedy"]] == ["1"]
    assert all("gpu" not in res for res in planned["select_toy_first"])
