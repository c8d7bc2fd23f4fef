"""The workflow end to end: the default plans, a reduced study runs, and its tables agree with an
independent computation from the saved split files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from protolib import io
from protolib.data import load_dataset
from protolib.layout import Layout
from tests.helpers import small_config, snakemake, write_config

pytestmark = pytest.mark.slow


def test_default_study_plans(repo, tmp_path):
    out = snakemake(
        "-n",
        "--cores",
        "2",
        "--configfile",
        str(repo / "config.yaml"),
        "--config",
        f"results={tmp_path}/results",
        workdir=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for rule in (
        "split",
        "features",
        "score_chunk",
        "select_evolutionary",
        "select_gmm",
        "evaluate_random",
        "table1",
        "fig2",
    ):
        assert rule in text
    assert not re.search(r"^transfer\s", text, re.M)  # no transfer entries: no job writing an empty table
    assert not (tmp_path / "results").exists()


def test_bad_config_stops_before_any_job(tmp_path):
    config = small_config(tmp_path / "results")
    config["selection"]["methods"] = ["greedy", "evolutionry"]
    path = write_config(tmp_path / "typo.yaml", config)
    out = snakemake("-n", "--cores", "1", "--configfile", str(path), workdir=tmp_path)
    assert out.returncode != 0
    assert "selection.methods: unknown method 'evolutionry'" in out.stderr + out.stdout


@pytest.fixture
def study(small_study):
    return small_study.results, small_study.config


def test_table1_has_every_row_and_values_in_range(study):
    results, config = study
    table = pd.read_csv(Path(Layout(results).tables, "table1.csv"))
    expected = {"100 %"} | {f"{m} {M}" for m in config["selection"]["methods"] for M in config["selection"]["M"]}
    assert set(table.row) == expected
    assert table["mean"].between(0, 100).all()
    assert (table.n_classes == len(config["datasets"]["digits"]["classes"])).all()
    random = table[table.method == "random"]
    assert random["std"].notna().all()
    md = Path(Layout(results).tables, "table1.md").read_text()
    assert f"random {config['selection']['M'][-1]}" in md and "±" in md
    assert "\\begin{table}" in Path(Layout(results).tables, "table1.tex").read_text()


def test_tables_agree_with_an_independent_knn_computation(study):
    """Recompute test AUROCs from the split files with plain numpy (not protolib's detector)."""
    results, config = study
    digits = load_dataset({"loader": "digits"})
    x = digits.images.reshape(len(digits.images), -1).astype(np.int64)  # exact: ties stay ties

    def knn_auroc(train_ids, split):
        test = np.asarray(split["test"]["ids"])
        d = ((x[test][:, None, :] - x[np.asarray(train_ids)][None, :, :]) ** 2).sum(-1)
        k = min(2, len(train_ids))
        scores = np.sort(d, axis=1)[:, :k].sum(1)
        return roc_auc_score(split["test"]["labels"], scores)

    layout = Layout(results)
    frame = pd.read_csv(layout.evaluation)
    checked = 0
    for cls in config["datasets"]["digits"]["classes"]:
        split = io.read_json(layout.split("digits", cls))
        for row in frame[frame["class"] == cls].itertuples():
            if row.method == "full":
                ids = split["train"]
            else:
                subset = io.read_json(layout.subset(row.method, row.M, row.seed, "digits", "knn", cls))
                ids = subset["ids"]
                assert set(ids) <= set(split["train"])
            if row.method == "full":
                result = io.read_json(layout.evaluation_full("digits", "knn", cls))
            else:
                result = io.read_json(layout.evaluation_file(row.method, row.M, row.seed, "digits", "knn", cls))
            assert result["test_auroc"] == pytest.approx(knn_auroc(ids, split), abs=1e-12)
            assert row.test_auroc == pytest.approx(result["test_auroc"], abs=1e-8)
            checked += 1
    selection = config["selection"]
    seeds = sum(selection.get(m, {}).get("repeats", 1) for m in selection["methods"])
    assert checked == 2 * (1 + len(selection["M"]) * seeds)


def test_per_sample_matrix_matches_the_split(study):
    results, config = study
    split = io.read_json(Layout(results).split("digits", 3))
    scores = io.read_npz(Layout(results).scores("digits", "knn", 3))
    assert scores["scores"].shape == (config["datasets"]["digits"]["candidates"], len(split["val"]["ids"]))
    assert scores["candidates"].tolist() == split["candidates"]
    assert scores["meta"]["config"]["seed"] == 0


def test_results_carry_their_config(study):
    results, config = study
    evolutionary = config["selection"]["evolutionary"]
    subset = io.read_json(Layout(results).subset("evolutionary", 3, 0, "digits", "knn", 3))
    assert subset["config"]["selection"]["evolutionary"]["population"] == evolutionary["population"]
    assert subset["config"]["model"]["knn"]["backbone"] == "pixels"
    assert len(subset["info"]["best_per_generation"]) == evolutionary["generations"] + 1


def test_every_output_names_its_device_and_every_log_starts_with_it(study):
    """device cpu: each file that records its config also records where it was computed
    (protolib.io adds `run`), and each job's log opens with the same device line."""
    results, _ = study
    from protolib.device import describe_run, torch_build

    version, cuda = torch_build()
    expected = {"device": "cpu", "gpu": None, "torch": version, "torch_cuda": cuda}
    records = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    records += [io.read_npz(p)["meta"] for p in results.rglob("*.npz")]
    with_config = [r for r in records if isinstance(r, dict) and "config" in r]
    kinds = {p.relative_to(results).parts[0] for p in [*results.rglob("*.json"), *results.rglob("*.npz")]}
    assert {"data", "splits", "features", "scores", "subsets", "eval", "transfer"} <= kinds, kinds
    assert len(with_config) > 50
    assert all(r.get("run") == expected for r in with_config), [r.get("run") for r in with_config][:3]
    logs_dir = Path(Layout(results).logs)
    logs = sorted(logs_dir.rglob("*.log"))
    assert {p.relative_to(logs_dir).parts[0] for p in logs} >= {"features", "score_chunk", "evaluate_full"}
    for log in logs:
        first = log.read_text().splitlines()[0]
        rel = log.relative_to(logs_dir)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem  # logs/<rule>/<wildcards>.log, logs/<rule>.log
        assert first.startswith(f"protolib: rule {rule} on "), (log, first)
        assert first.endswith(describe_run(expected)), (log, first)


def test_named_targets_rebuild_only_what_they_need(study, tmp_path):
    results, config = study
    path = write_config(tmp_path / "small.yaml", config)
    layout = Layout(results)
    for f in [*Path(layout.tables).glob("table1.*"), *Path(layout.figures).glob("fig2_*")]:
        f.unlink()
    workdir = results.parent
    out = snakemake(
        "table1", "--cores", "2", "--configfile", str(path), workdir=workdir
    )  # target first: --configfile takes several values
    assert out.returncode == 0, out.stderr[-3000:]
    assert Path(layout.tables, "table1.csv").exists()
    assert not Path(layout.figures, "fig2_digits_knn.png").exists(), "table1 built more than it needs"
    out = snakemake("fig2", "--cores", "2", "--configfile", str(path), workdir=workdir)
    assert out.returncode == 0, out.stderr[-3000:]
    png = Path(layout.figures, "fig2_digits_knn.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert Path(layout.figures, "fig2_digits_knn.pdf").read_bytes()[:5] == b"%PDF-"
    out = snakemake("-n", "--cores", "2", "--configfile", str(path), workdir=workdir)
    assert "Nothing to be done" in out.stdout + out.stderr


def test_a_changed_setting_reruns_what_depends_on_it_and_nothing_else(study, tmp_path):
    results, config = study
    changed = json.loads(json.dumps(config))
    changed["selection"]["evolutionary"]["generations"] += 1
    path = write_config(tmp_path / "changed.yaml", changed)
    out = snakemake("-n", "--cores", "2", "--configfile", str(path), workdir=results.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    stats = text[text.index("Job stats") :]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", stats, re.M))
    assert jobs.get("select_evolutionary") == "2" and jobs.get("evaluate_evolutionary") == "2"
    for untouched in (
        "prepare",
        "split",
        "features",
        "score_chunk",
        "merge_scores",
        "select_greedy",
        "select_gmm",
        "select_random",
        "select_manual",
        "evaluate_greedy",
        "evaluate_random",
        "evaluate_manual",
        "evaluate_full",
        "transfer_knn_to_resnet",
    ):
        assert untouched not in jobs, (untouched, jobs)


def test_a_changed_transfer_target_setting_reruns_the_transfer_jobs(tmp_path):
    """A target sharing the source's feature cache (both raw pixels): its k changes no input file
    of the transfer jobs, so only their params (both runs' settings) can rerun them, rather than
    leave k = 5 transfer rows beside a k = 9 baseline in transfer/evaluation.csv."""
    config = small_config(tmp_path / "results")
    config["datasets"]["digits"]["classes"] = [3]
    config["models"]["knn5"] = {"detector": "knn", "backbone": "pixels", "k": 5}
    config["selection"] = {"M": [1], "methods": ["greedy"]}
    config["transfer"] = [
        {
            "name": "k2_to_k5",
            "source": {"dataset": "digits", "model": "knn"},
            "target": {"dataset": "digits", "model": "knn5"},
        }
    ]
    out = snakemake(
        "transfer", "--cores", "2", "--configfile", str(write_config(tmp_path / "a.yaml", config)), workdir=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    config["models"]["knn5"]["k"] = 9
    out = snakemake(
        "transfer",
        "-n",
        "--cores",
        "2",
        "--configfile",
        str(write_config(tmp_path / "b.yaml", config)),
        workdir=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", text[text.index("Job stats") :], re.M))
    assert jobs.get("transfer_k2_to_k5") == "1", jobs
    assert "select_greedy" not in jobs and "features" not in jobs, jobs


def test_a_changed_k_rescores_without_recomputing_the_feature_cache(small_study, tmp_path):
    """The cache depends on the frozen backbone's settings, not the detector's k (on a ResNet,
    recomputing it would cost GPU hours, and every model sharing it would rerun too)."""
    changed = write_config(tmp_path / "k3.yaml", {"models": {"knn": {**small_study.config["models"]["knn"], "k": 3}}})
    out = snakemake(
        "-n", "--cores", "1", "--configfile", str(small_study.path), str(changed), workdir=small_study.workdir
    )
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = {line.split()[0] for line in out.stdout.splitlines() if re.match(r"^[a-z_]+\s+\d+$", line)}
    assert "score_chunk" in jobs and "features" not in jobs, jobs
