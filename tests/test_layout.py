"""protolib.layout: one path per file, and the same path as a Snakemake pattern without values."""

from __future__ import annotations

import re

import pytest

from protolib.layout import Layout

L = Layout("res")
VALUES = {"dataset": "digits", "model": "knn", "cls": 3, "chunk": 1, "fkey": "pixels-raw"}


@pytest.mark.parametrize(
    ("pattern", "concrete"),
    [
        (L.data(), L.data("digits")),
        (L.split(), L.split("digits", 3)),
        (L.feature_files()[0], L.feature_files("digits", "pixels-raw")[0]),
        (L.feature_files()[1], L.feature_files("digits", "pixels-raw")[1]),
        (L.chunk(), L.chunk("digits", "knn", 3, 1)),
        (L.scores(), L.scores("digits", "knn", 3)),
        (L.subset("greedy", 5, 0), L.subset("greedy", 5, 0, "digits", "knn", 3)),
        (L.evaluation_file("random", 5, 2), L.evaluation_file("random", 5, 2, "digits", "knn", 3)),
        (L.evaluation_full(), L.evaluation_full("digits", "knn", 3)),
        (L.transfer("t", "greedy", 1, 0), L.transfer("t", "greedy", 1, 0, 3)),
        (L.transfer_full("t"), L.transfer_full("t", 3)),
    ],
)
def test_a_pattern_filled_with_values_is_the_path_of_those_values(pattern, concrete):
    assert "{" in pattern and pattern.format(**VALUES) == concrete


def test_every_file_is_under_the_results_folder_and_files_of_different_kinds_differ():
    paths = [
        L.data("d"),
        L.split("d", 0),
        *L.feature_files("d", "f"),
        L.chunk("d", "m", 0, 0),
        L.scores("d", "m", 0),
        L.subset("greedy", 1, 0, "d", "m", 0),
        L.evaluation_file("greedy", 1, 0, "d", "m", 0),
        L.evaluation_full("d", "m", 0),
        L.transfer("t", "greedy", 1, 0, 0),
        L.transfer_full("t", 0),
        L.evaluation,
        L.transfer_evaluation,
        L.log("split", "dataset"),
        L.benchmark("split", "dataset"),
    ]
    assert all(p.startswith("res/") for p in paths)
    assert len(set(paths)) == len(paths)
    assert L.log("split", "dataset", "cls") == "res/logs/split/{dataset}/{cls}.log"
    assert re.fullmatch(r"res/subsets/d/m/0/greedy/M1_seed0\.json", L.subset("greedy", 1, 0, "d", "m", 0))
