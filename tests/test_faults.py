"""Bad data gets a clear error naming the file, and nothing already computed is overwritten."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from protolib import integrity, io, pipeline
from protolib.checks import InputMismatchError
from protolib.config import validate
from tests.helpers import small_config


@pytest.fixture
def prepared(tmp_path):
    config = validate(small_config(tmp_path / "results"))
    data = tmp_path / "digits.npz"
    pipeline.prepare_dataset(config, "digits", data)
    split = tmp_path / "split.json"
    pipeline.make_split(config, "digits", 3, data, split)
    features = tmp_path / "pixels.npy"
    pipeline.make_features(config, "digits", "knn", data, features, tmp_path / "pixels.json")
    return config, data, split, features


@pytest.mark.parametrize("edit", ["nan", "columns", "truncated", "no description"])
def test_an_edited_feature_cache_is_refused_naming_it_and_its_rule(edit, prepared, tmp_path):
    """One NaN typed into the cache changed 7 cells of Table 1; a cache cut to a[:, :32] beside a
    description saying 64 columns ran 35 jobs; a truncated one gave numpy's bare mmap error."""
    config, _, split, features = prepared
    array = np.load(features)
    if edit == "nan":
        array[5, 3] = np.nan
        np.save(features, array)
    elif edit == "columns":
        np.save(features, np.ascontiguousarray(array[:, :32]))
    elif edit == "truncated":
        features.write_bytes(features.read_bytes()[:-100])
    else:
        features.with_suffix(".json").unlink()
    out = tmp_path / "chunk0.npz"
    with pytest.raises(InputMismatchError) as err:
        pipeline.score_chunk(config, "digits", "knn", 0, split, None, features, out)
    assert str(features) in str(err.value) and "snakemake --forcerun features" in str(err.value)
    assert "\n" not in str(err.value)
    assert not out.exists()


def test_score_chunk_of_the_wrong_shape_is_named_and_nothing_is_overwritten(prepared, tmp_path):
    config, data, split, features = prepared
    chunks = []
    for c in range(pipeline.n_chunks(config, "digits")):
        path = tmp_path / f"chunk{c}.npz"
        pipeline.score_chunk(config, "digits", "knn", c, split, None, features, path)
        chunks.append(str(path))
    merged = tmp_path / "matrix.npz"
    pipeline.merge_scores(config, "digits", "knn", split, chunks, merged)
    before = merged.read_bytes()
    part = integrity.read_npz(chunks[0], "score_chunk")
    # as a job would write it (digest and all), with one val column short
    integrity.write_npz(
        chunks[0],
        part["integrity"]["made_from"],
        scores=part["scores"][:, :-1],
        candidates=part["candidates"],
        meta=part["meta"],
    )
    with pytest.raises(ValueError, match=r"chunk0.npz: score chunk has shape \(15, \d+\), expected \(rows, \d+\)"):
        pipeline.merge_scores(config, "digits", "knn", split, chunks, merged)
    assert merged.read_bytes() == before


def _writer(path: str, value: int) -> None:
    for _ in range(30):
        io.write_npy(path, np.full((200, 200), value, dtype=np.float32))


def test_two_writers_of_one_cache_file_never_corrupt_it(tmp_path):
    path = str(tmp_path / "features.npy")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, v)) for v in (1, 2)]
    for p in procs:
        p.start()
    seen = set()
    while any(p.is_alive() for p in procs):
        try:
            arr = np.load(path)
        except FileNotFoundError:
            continue
        assert arr.shape == (200, 200) and len(np.unique(arr)) == 1  # never a mix or a torn file
        seen.add(float(arr[0, 0]))
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert np.unique(np.load(path)).size == 1
    assert not list(tmp_path.glob("*.part"))


def test_evaluation_with_a_subset_outside_the_split_is_rejected(prepared, tmp_path):
    config, data, split, features = prepared
    integrity.write_json(tmp_path / "subset.json", {"method": "manual", "M": 1, "seed": 0, "ids": [10**6]})
    with pytest.raises((IndexError, ValueError)):
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
