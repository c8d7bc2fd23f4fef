"""Every table and figure of the paper as a named target, on a reduced embedded-default study.

The session's shared small study (tests.helpers.study_config: digits / knn, two classes, 20
candidates, M in {1, 3}, every selector, plus a transfer entry digits/knn -> digits/knn_resnet),
run once with every target; the tests check that tables parse back to the numbers of
evaluation.csv, that figures are valid PNG / PDF files, that the images shown are the ids the
subset / score / split / feature files name (sidecar JSON), and that `snakemake --report` writes
an HTML page with every caption.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from protolib import integrity, io
from protolib.config import ConfigError, validate
from protolib.layout import Layout
from protolib.models.backbones import feature_key
from tests.helpers import STUDY_CLASSES, STUDY_METHODS, STUDY_TRANSFER, small_config, snakemake, write_config

pytestmark = pytest.mark.slow

CLASSES = STUDY_CLASSES
METHODS = STUDY_METHODS
TRANSFER = STUDY_TRANSFER
CAPTIONS = [
    "Table 1 (summary)",
    "Table 2 (one run",
    "Per-class tables",
    "Figure 1 (one class)",
    "Figure 2 (every class)",
    "Figure 3 (what the methods select)",
    "Figure 4 (best and worst single",
    "Figure 5 (best and worst by",
    "Figure 6 (transfer)",
    "Figure 7 (long-tailed",
]


@pytest.fixture
def study(small_study):
    return small_study.results, small_study.config, small_study.path


def features_file(results, config) -> Path:
    """The study's feature cache of digits / knn (named by the backbone's feature key)."""
    return Path(Layout(results).feature_files("digits", feature_key(config["models"]["knn"]))[0])


def _eval(results) -> pd.DataFrame:
    return pd.read_csv(Layout(results).evaluation)


def _expected(frame: pd.DataFrame, method: str, M) -> tuple[float, float]:
    sel = frame[frame.method == method] if M is None else frame[(frame.method == method) & (frame.M == M)]
    per_seed = sel.groupby("seed").test_auroc.mean() * 100
    return per_seed.mean(), (per_seed.std(ddof=0) if len(per_seed) > 1 else np.nan)


def _parse_cell(text: str) -> tuple[float | None, float | None, str, bool]:
    """'**97.1**\\* ± 0.30' -> (97.1, 0.3, 'best', True); '–' -> (None, None, '', False)."""
    text = text.strip()
    if text in ("–", "--"):
        return None, None, "", False
    mark = (
        "best" if ("**" in text or "\\textbf" in text) else "second" if ("<u>" in text or "\\underline" in text) else ""
    )
    star = "*" in text.replace("**", "")
    numbers = [float(x) for x in re.findall(r"\d+\.\d+", text)]
    return numbers[0], (numbers[1] if len(numbers) > 1 else None), mark, star


def _markdown_rows(path) -> dict[str, dict[str, str]]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header[1:], cells[1:]))
    return rows


def _latex_rows(path) -> dict[str, list[str]]:
    body = path.read_text().split("\\midrule")[1].split("\\bottomrule")[0]
    rows = {}
    for line in body.strip().splitlines():
        cells = [c.strip() for c in line.rstrip("\\ ").split(" & ")]
        rows[cells[0].replace("\\%", "%").replace("\\_", "_")] = cells[1:]
    return rows


def _check_formatted(results, stem: str, long: pd.DataFrame) -> None:
    """Markdown and LaTeX cells carry the CSV's numbers (2 decimals) and its marks."""
    md = _markdown_rows(Path(Layout(results).tables, f"{stem}.md"))
    tex = _latex_rows(Path(Layout(results).tables, f"{stem}.tex"))
    columns = list(dict.fromkeys(long.column))
    for r in long.itertuples():
        for cell in (md[r.row][r.column], tex[r.row][columns.index(r.column)]):
            mean, std, mark, star = _parse_cell(cell)
            assert mean == pytest.approx(round(r.mean, 2), abs=0.0051), (stem, r.row, r.column, cell)
            if np.isnan(r.std):
                assert std is None
            else:
                assert std == pytest.approx(round(r.std, 2), abs=0.0051)
            assert mark == (r.mark if isinstance(r.mark, str) else "")
            assert star == bool(r.above_full)
    html = Path(Layout(results).tables, f"{stem}.html").read_text()
    assert html.count("<b>") >= len(columns) and "<table>" in html


# ----------------------------------------------------------------------------- tables
def test_table1_parses_back_to_evaluation_csv(study):
    results, config, _ = study
    frame = _eval(results)
    table = pd.read_csv(Path(Layout(results).tables, "table1.csv"))
    expected_rows = {"100 %"} | {f"{m} {M}" for m in METHODS for M in config["selection"]["M"]}
    assert set(table.row) == expected_rows
    for r in table.itertuples():
        mean, std = _expected(frame, r.method, None if r.method == "full" else int(r.M))
        assert r.mean == pytest.approx(mean, abs=1e-5)
        assert (np.isnan(std) and np.isnan(r.std)) or r.std == pytest.approx(std, abs=1e-5)
    # best per column in bold, second underlined, values above 100 % starred
    shown = table["mean"].round(2)
    assert set(table.loc[shown == shown.max(), "mark"]) == {"best"}
    assert (
        table.loc[table.above_full, "mean"].round(2) > round(float(table.loc[table.row == "100 %", "mean"].iloc[0]), 2)
    ).all()
    _check_formatted(results, "table1", table)
    assert "\\textbf{" in Path(Layout(results).tables, "table1.tex").read_text()
    assert table.loc[table.method == "random", "std"].notna().all()


def test_per_class_tables_parse_back(study):
    results, _, _ = study
    frame = _eval(results)
    table = pd.read_csv(Path(Layout(results).tables, "per_class_digits_knn.csv"))
    for _, r in table.iterrows():
        sel = (
            frame[frame.method == r.method]
            if r.method == "full"
            else frame[(frame.method == r.method) & (frame.M == r.M)]
        )
        if r.column == "average":
            mean, _ = _expected(frame, r.method, None if r.method == "full" else int(r.M))
        else:
            mean = sel[sel["class"] == int(r["class"])].test_auroc.mean() * 100
        assert r["mean"] == pytest.approx(mean, abs=1e-5)
    assert set(table.column) == {"3", "8", "average"}
    _check_formatted(results, "per_class_digits_knn", table)


def near_tie_tolerance(scores: np.ndarray, magnitude: np.ndarray, labels: np.ndarray, relative: float = 1e-5) -> float:
    """How far an AUROC from float32 distances (faiss-cpu, the CPU search for float features) may
    be from the float64 one. faiss computes |q|^2 + |b|^2 - 2 q.b in float32, so a score's error
    scales with ``magnitude`` (|q|^2 + |b|^2 summed over its k neighbours), not with the score:
    the share of (anomalous, normal) pairs whose float64 scores are closer than their two error
    bounds (either order is then a right answer), plus 1e-9."""
    err = relative * magnitude
    a, n = labels == 1, labels == 0
    near = np.abs(scores[a][:, None] - scores[n][None, :]) <= err[a][:, None] + err[n][None, :]
    return float(near.sum()) / near.size + 1e-9


def test_transfer_outputs_and_an_independent_knn(study):
    """Subsets found with knn on pixels, evaluated with knn on ResNet18 features (numpy kNN here)."""
    results, config, _ = study
    features = np.load(Layout(results).feature_files("digits", "resnet18-none0-32")[0]).astype(np.float64)
    csv = pd.read_csv(Layout(results).transfer_evaluation)
    n_expected = len(CLASSES) * (
        1 + 1 + 2 + 2 * 2 + 2
    )  # full + target_full + greedy 2 M + random 2 M x 2 seeds + manual
    assert len(csv) == n_expected
    for cls in CLASSES:
        split = io.read_json(Layout(results).split("digits", cls))
        test = np.asarray(split["test"]["ids"])
        for method, seeds in (("greedy", [0]), ("random", [0, 1]), ("manual", [0])):
            for M in config["selection"]["M"]:
                for seed in seeds:
                    subset = io.read_json(Layout(results).subset(method, M, seed, "digits", "knn", cls))
                    result = io.read_json(Layout(results).transfer(TRANSFER, method, M, seed, cls))
                    assert result["ids"] == subset["ids"]
                    q, bank = features[test], features[subset["ids"]]
                    d = ((q[:, None, :] - bank[None, :, :]) ** 2).sum(-1)
                    k = min(2, M)
                    scores = np.sort(d, axis=1)[:, :k].sum(1)
                    magnitude = k * ((q**2).sum(1) + (bank**2).sum(1).max())
                    labels = np.asarray(split["test"]["labels"])
                    tolerance = near_tie_tolerance(scores, magnitude, labels)
                    assert abs(result["test_auroc"] - roc_auc_score(labels, scores)) <= tolerance, (cls, method, M)
                    row = csv[(csv["class"] == cls) & (csv.method == method) & (csv.M == M) & (csv.seed == seed)]
                    assert row.test_auroc.iloc[0] == pytest.approx(result["test_auroc"], abs=1e-7)
        baseline = io.read_json(Layout(results).evaluation_full("digits", "knn_resnet", cls))
        row = csv[(csv["class"] == cls) & (csv.method == "target_full")]
        assert row.test_auroc.iloc[0] == pytest.approx(baseline["test_auroc"], abs=1e-7)


def test_table2_has_the_run_and_its_transfer_column(study):
    results, _, _ = study
    table = pd.read_csv(Path(Layout(results).tables, "table2.csv"))
    table1 = pd.read_csv(Path(Layout(results).tables, "table1.csv"))
    own = table[table.column == "digits/knn"].set_index("row")
    for r in table1.itertuples():
        assert own.loc[r.row, "mean"] == pytest.approx(r.mean, abs=1e-5)
    transfer = pd.read_csv(Layout(results).transfer_evaluation)
    column = table[table.column.str.startswith("transfer")]
    assert set(column.row) == {"100 %"} | {f"{m} {M}" for m in ("greedy", "random", "manual") for M in (1, 3)}
    for r in column.itertuples():
        method = "target_full" if r.row == "100 %" else r.method
        mean, std = _expected(transfer, method, None if r.row == "100 %" else int(r.M))
        assert r.mean == pytest.approx(mean, abs=1e-5)
    _check_formatted(results, "table2", table)
    assert "knn_resnet" in Path(Layout(results).tables, "table2.md").read_text()


# ----------------------------------------------------------------------------- figures
@pytest.mark.parametrize("name", ["fig1", "fig2_digits_knn", "fig3", "fig4", "fig5", "fig6", "fig7"])
def test_figures_are_valid_png_and_pdf(study, name):
    results, _, _ = study
    png = Path(Layout(results).figures, f"{name}.png")
    pdf = Path(Layout(results).figures, f"{name}.pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000


def test_fig1_shows_the_evaluation_numbers(study):
    results, _, _ = study
    side = io.read_json(Path(Layout(results).figures, "fig1.json"))
    frame = _eval(results)
    cls = side["choice"]["classes"][0]
    sub = frame[frame["class"] == cls]
    assert side["curves"]["full"] == pytest.approx(sub[sub.method == "full"].test_auroc.mean() * 100)
    greedy = sub[sub.method == "greedy"].sort_values("M").test_auroc * 100
    assert side["curves"]["greedy"]["mean"] == pytest.approx(greedy.tolist())
    assert "manual" in side["curves"] and "random" in side["curves"]


def test_fig3_shows_the_subset_and_test_ids(study):
    results, _, _ = study
    side = io.read_json(Path(Layout(results).figures, "fig3.json"))
    cls = side["class"]
    assert set(side["subsets"]) == {"greedy", "evolutionary"}
    for method, entry in side["subsets"].items():
        subset = io.read_json(Layout(results).subset(method, 3, 0, "digits", "knn", cls))
        assert entry["M"] == 3 and entry["shown"] == subset["ids"][: side["n_images"]]
    split = io.read_json(Layout(results).split("digits", cls))
    label = dict(zip(split["test"]["ids"], split["test"]["labels"]))
    assert side["test_normal"] and all(label[i] == 0 for i in side["test_normal"])
    assert side["test_anomalous"] and all(label[i] == 1 for i in side["test_anomalous"])


def test_fig4_shows_the_best_and_worst_single_samples(study):
    results, _, _ = study
    side = io.read_json(Path(Layout(results).figures, "fig4.json"))
    assert [c["class"] for c in side["classes"]] == list(CLASSES)
    for c in side["classes"]:
        matrix = io.read_npz(Layout(results).scores("digits", "knn", c["class"]))
        auroc = dict(zip(matrix["candidates"].tolist(), matrix["sample_auroc"].tolist()))
        best, worst = c["best"]["ids"], c["worst"]["ids"]
        assert len(best) == len(worst) == 3 and set(best) <= set(auroc) and set(worst) <= set(auroc)
        assert c["best"]["sample_auroc"] == pytest.approx([auroc[i] for i in best])
        rest = [a for i, a in auroc.items() if i not in best]
        assert min(auroc[i] for i in best) >= max(rest)
        rest = [a for i, a in auroc.items() if i not in worst]
        assert max(auroc[i] for i in worst) <= min(rest)


def test_fig5_ranks_by_the_evolutionary_subsets(study):
    results, config, _ = study
    side = io.read_json(Path(Layout(results).figures, "fig5.json"))
    cls = side["class"]
    counts: dict[int, int] = {}
    for M in config["selection"]["M"]:
        for i in io.read_json(Layout(results).subset("evolutionary", M, 0, "digits", "knn", cls))["ids"]:
            counts[i] = counts.get(i, 0) + 1
    matrix = io.read_npz(Layout(results).scores("digits", "knn", cls))
    candidates = set(matrix["candidates"].tolist())
    best, worst = side["best"], side["worst"]
    assert len(best["ids"]) == len(worst["ids"]) == 4
    assert set(best["ids"]) | set(worst["ids"]) <= candidates and not set(best["ids"]) & set(worst["ids"])
    assert best["count"] == [counts.get(i, 0) for i in best["ids"]]
    assert worst["count"] == [counts.get(i, 0) for i in worst["ids"]]
    assert max(counts.values()) == best["count"][0] and min(best["count"]) >= max(worst["count"])
    assert side["n_subsets"] == len(config["selection"]["M"])


def test_fig6_has_the_transfer_curves_and_both_baselines(study):
    results, _, _ = study
    side = io.read_json(Path(Layout(results).figures, "fig6.json"))
    assert not side["placeholder"] and [e["name"] for e in side["entries"]] == [TRANSFER]
    curves = side["curves"][TRANSFER]
    transfer = pd.read_csv(Layout(results).transfer_evaluation)
    assert curves["target_full"] == pytest.approx(transfer[transfer.method == "target_full"].test_auroc.mean() * 100)
    assert {"greedy", "random", "manual"} <= set(curves)


def test_fig7_shows_the_centre_and_the_tail(study):
    results, config, _ = study
    side = io.read_json(Path(Layout(results).figures, "fig7.json"))
    assert side["class"] == 8
    split = io.read_json(Layout(results).split("digits", 8))
    features = np.load(features_file(results, config)).astype(np.float64)
    train = np.asarray(split["train"])
    dist = np.linalg.norm(features[train] - features[train].mean(0), axis=1)
    order = train[np.argsort(dist, kind="stable")]
    assert side["centre"]["ids"] == order[:3].tolist()
    assert side["tail"]["ids"] == order[::-1][:3].tolist()
    assert len(side["distances"]) == len(train)


# ----------------------------------------------------------------------------- by name, report
def test_a_figure_rebuilds_alone_by_name(study):
    results, _, path = study
    before = {
        p.name: p.stat().st_mtime_ns for p in Path(Layout(results).figures).iterdir() if not p.name.startswith("fig5")
    }
    for f in Path(Layout(results).figures).glob("fig5.*"):
        f.unlink()
    out = snakemake("fig5", "--cores", "2", "--configfile", str(path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert Path(Layout(results).figures, "fig5.png").exists() and Path(Layout(results).figures, "fig5.json").exists()
    after = {
        p.name: p.stat().st_mtime_ns for p in Path(Layout(results).figures).iterdir() if not p.name.startswith("fig5")
    }
    assert before == after, "fig5 rebuilt other figures"


def test_report_html_has_every_caption(study, tmp_path):
    results, _, path = study
    html = tmp_path / "report.html"
    out = snakemake("--report", str(html), "--configfile", str(path))
    assert out.returncode == 0, out.stderr[-3000:]
    text = html.read_text()
    for caption in CAPTIONS:
        assert caption in text, caption
    for name in ("fig1.png", "fig3.png", "fig7.png", "table1.html", "table2.html", "per_class_digits_knn.html"):
        assert name in text, name
    assert "(WARNING/" not in out.stderr, "a caption is not valid reStructuredText"


def test_fig6_without_transfer_is_a_placeholder(tmp_path):
    config = small_config(tmp_path / "results")
    path = write_config(tmp_path / "none.yaml", config)
    out = snakemake("fig6", "--cores", "1", "--configfile", str(path))
    assert out.returncode == 0, out.stderr[-3000:]
    figures = Layout(tmp_path / "results").figures
    side = json.loads(Path(figures, "fig6.json").read_text())
    assert side["placeholder"] and "no transfer experiments configured" in side["message"]
    assert Path(figures, "fig6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not Path(Layout(tmp_path / "results").evaluation).exists(), "the placeholder ran the study"


# ----------------------------------------------------------------------------- tables and figures, alone
def test_marks_follow_the_numbers_as_printed():
    """50.005 prints as 50.01 (correctly rounded) while numpy/pandas round it to 50.0: two cells
    that both read 50.01 share the bold mark, and the 50.00 below them is second."""
    from protolib import tables

    long = pd.DataFrame(
        {
            "row": ["100 %", "greedy 1", "evolutionary 1"],
            "column": ["c"] * 3,
            "mean": [0.50005 * 100, 0.5001 * 100, 0.50004 * 100],
            "std": [np.nan] * 3,
        }
    )
    assert np.round(long["mean"][0], 2) != float(f"{long['mean'][0]:.2f}")  # the case is real
    cells = tables.formatted(long)["c"].tolist()
    assert cells == ["**50.01**", "**50.01**", "<u>50.00</u>"]


@pytest.mark.parametrize("drop", ["a class of one method", "a class of one random seed", "a class of 100 %"])
def test_a_mean_over_fewer_classes_is_refused(drop, tmp_path):
    """Every table and figure reads the evaluation table through read_evaluation: a row with
    fewer classes than its column would be averaged over them and compared as if alike."""
    from protolib import report

    rows = [
        {
            "dataset": "d",
            "model": "m",
            "class": c,
            "class_name": str(c),
            "method": method,
            "M": M,
            "seed": seed,
            "n_train": 5,
            "test_auroc": 0.5 + 0.01 * c,
        }  # 100 %: M is the class's training set size
        for c in range(3)
        for method, M, seeds in [("full", 100 + c, [0]), ("greedy", 1, [0]), ("random", 1, [0, 1])]
        for seed in seeds
    ]
    frame = pd.DataFrame(rows)
    integrity.write_table(tmp_path / "whole.csv", frame.to_csv(index=False))
    report.read_evaluation(tmp_path / "whole.csv")  # complete: read as is
    gone = {
        "a class of one method": (frame.method == "greedy") & (frame["class"] == 2),
        "a class of one random seed": (frame.method == "random") & (frame.seed == 1) & (frame["class"] == 0),
        "a class of 100 %": (frame.method == "full") & (frame["class"] == 1),
    }[drop]
    integrity.write_table(tmp_path / "evaluation.csv", frame[~gone].to_csv(index=False))
    with pytest.raises(ValueError, match=r"evaluation\.csv: d/m, .* has no result for class\(es\) [0-2] of the 3"):
        report.read_evaluation(tmp_path / "evaluation.csv")


@pytest.mark.parametrize("edit", ["a number changed", "the description removed", "a row removed"])
def test_an_edited_evaluation_table_is_refused_naming_the_rule_that_rebuilds_it(edit, tmp_path):
    """evaluation.csv has no room for a digest: its .json description holds it, and every table
    and figure reads the CSV through it (a number typed into it would reach Table 1)."""
    from protolib import report

    frame = pd.DataFrame(
        [
            {"dataset": "d", "model": "m", "class": 0, "class_name": "0", "method": "full", "M": 9, "seed": 0}
            | {"n_train": 9, "test_auroc": 0.75}
        ]
    )
    path = tmp_path / "evaluation.csv"
    integrity.write_table(path, frame.to_csv(index=False, float_format="%.8f"))
    assert report.read_evaluation(path)["test_auroc"].tolist() == [0.75]
    text = path.read_text()
    if edit == "a number changed":
        path.write_text(text.replace("0.75000000", "0.99900000"))
    elif edit == "a row removed":
        path.write_text(text.splitlines()[0] + "\n")
    else:
        integrity.description_path(path).unlink()
    problem = "has no description evaluation.json" if edit == "the description removed" else "does not match the digest"
    with pytest.raises(ValueError, match=rf"evaluation\.csv: .*{problem}.*snakemake --forcerun evaluation_table"):
        report.read_evaluation(path)


def test_fig5_calls_its_second_row_never_chosen_only_when_it_was_not(monkeypatch, tmp_path):
    from protolib.figures import images as figure_images

    matrix = {
        "candidates": np.arange(4),
        "scores": np.arange(8.0).reshape(4, 2),
        "val_labels": np.array([0, 1]),
        "sample_auroc": np.full(4, 0.5),
    }
    every = figure_images.pick_evolutionary(
        matrix, [{"M": 2, "seed": 0, "ids": [0, 1]}, {"M": 2, "seed": 1, "ids": [2, 3]}], 2
    )
    some = figure_images.pick_evolutionary(matrix, [{"M": 2, "seed": 0, "ids": [0, 1]}], 2)
    assert min(every["worst"]["count"]) == 1 and some["worst"]["count"] == [0, 0]
    titles: list[str] = []
    monkeypatch.setattr(figure_images, "draw_grid", lambda sections, *a, **k: titles.append(sections[1].title))
    for ranking in (every, some):
        figure_images.fig5(np.zeros((4, 3, 3), np.uint8), ranking, tmp_path / "fig5", "t", {})
    assert "never chosen" not in titles[0] and "never chosen" in titles[1]


# ----------------------------------------------------------------------------- config resolution
PAPER_CLASSES = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "mvtec": ["bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw"],
}


@pytest.fixture
def paper_like_config(monkeypatch) -> dict:
    """Runs of CIFAR10 and MVTec-AD beside digits (class names only; nothing is loaded)."""
    from protolib.data.base import CLASS_NAMES

    for loader, names in PAPER_CLASSES.items():
        monkeypatch.setitem(CLASS_NAMES, loader, names)
    config = small_config("results")
    config["datasets"] = {
        "digits": {"loader": "digits", "classes": [3, 8], "candidates": 30},
        "cifar10": {"loader": "cifar10", "classes": "all", "candidates": 30},
        "mvtec": {"loader": "mvtec", "classes": ["bottle", "screw"], "candidates": 30},
    }
    config["models"]["panda"] = {"detector": "knn", "backbone": "pixels"}
    config["runs"] = [
        {"dataset": "digits", "model": "knn"},
        {"dataset": "cifar10", "model": "panda"},
        {"dataset": "mvtec", "model": "panda"},
    ]
    return config


def test_figure_choices_default_to_the_paper_then_the_first_run(paper_like_config):
    from protolib.figures.choices import figure_choice

    config = paper_like_config
    fig1 = figure_choice(config, "fig1")
    assert (fig1.dataset, fig1.model, fig1.class_names) == ("cifar10", "panda", ["cat"])
    fig3 = figure_choice(config, "fig3")
    assert (fig3.dataset, fig3.class_names) == ("mvtec", ["screw"])
    assert figure_choice(config, "fig4").classes == list(range(10))
    fig5 = figure_choice(config, "fig5")  # no RSNA run: the first run and its first class
    assert (fig5.dataset, fig5.model, fig5.classes) == ("digits", "knn", [3])
    config["report"] = {"fig1": {"dataset": "digits", "class": 8}}
    assert figure_choice(config, "fig1").classes == [8]


def test_bad_figure_settings_name_the_key(paper_like_config):
    from protolib.figures.choices import figure_choice

    config = paper_like_config
    config["report"] = {"fig1": {"dataset": "digits", "class": 5}}
    with pytest.raises(ConfigError, match=r"report\.fig1\.class: 5 is not a class the study runs"):
        figure_choice(config, "fig1")
    config["report"] = {"fig3": {"dataset": "nope"}}
    with pytest.raises(ConfigError, match=r"report\.fig3\.dataset"):
        figure_choice(config, "fig3")


def test_bad_transfer_entries_name_the_key(paper_like_config):

    config = paper_like_config
    config["transfer"] = [
        {
            "source": {"dataset": "digits", "model": "knn"},
            "target": {"dataset": "chexpert", "model": "knn"},
            "methods": ["greedy", "evolutionry"],
        }
    ]
    with pytest.raises(ConfigError) as err:
        validate(config)
    assert "transfer[0].target.dataset: 'chexpert'" in str(err.value)
    assert "transfer[0].methods: 'evolutionry'" in str(err.value)


def test_dataset_transfer_uses_each_datasets_files(study, tmp_path):
    """digits/knn subsets evaluated on a second dataset (another split of digits): training
    features from the source's cache, test features from the target's (a separate file)."""
    from protolib import pipeline

    results, config, _ = study
    config = copy.deepcopy(config)
    config["datasets"]["digits2"] = {
        "loader": "digits",
        "classes": [3, 8],
        "split": {"train": 0.6667, "seed": 1},
        "candidates": 20,
    }
    config["transfer"] = [
        {
            "name": "to_digits2",
            "source": {"dataset": "digits", "model": "knn"},
            "target": {"dataset": "digits2", "model": "knn"},
            "methods": ["greedy"],
        }
    ]
    config = validate(config)
    assert pipeline.transfer_entry(config, "to_digits2")["pairs"] == [(3, 3), (8, 8)]
    target_split = tmp_path / "digits2_3.json"
    pipeline.make_split(config, "digits2", 3, Layout(results).data("digits"), target_split)
    target_features = tmp_path / "pixels.npy"
    for suffix in (".npy", ".json"):  # the cache and its description (shape, digest)
        shutil.copy(features_file(results, config).with_suffix(suffix), target_features.with_suffix(suffix))
    subset = Layout(results).subset("greedy", 3, 0, "digits", "knn", 3)
    out = tmp_path / "M3_seed0.json"
    pipeline.evaluate_transfer(
        config,
        "to_digits2",
        Layout(results).split("digits", 3),
        target_split,
        None,
        features_file(results, config),
        None,
        target_features,
        [str(subset)],
        [str(out)],
    )
    result = io.read_json(out)
    split = io.read_json(target_split)
    x = np.load(target_features).astype(np.float64)
    ids = io.read_json(subset)["ids"]
    d = ((x[split["test"]["ids"]][:, None, :] - x[ids][None, :, :]) ** 2).sum(-1)
    expected = roc_auc_score(split["test"]["labels"], np.sort(d, axis=1)[:, :2].sum(1))
    assert result["test_auroc"] == pytest.approx(expected, abs=1e-9)
    assert result["target"]["dataset"] == "digits2" and result["source"]["dataset"] == "digits"
