"""Atomic writes: a failure mid-write leaves the old file (or none), never a partial one."""

import numpy as np
import pytest

from protolib import io


def test_failed_write_leaves_previous_content_and_no_temp_files(tmp_path):
    target = tmp_path / "out.json"
    io.write_json(target, {"a": 1})

    def killed_mid_write() -> None:
        with io.atomic_path(target) as tmp:
            tmp.write_text('{"a": 2, "trunc')
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        killed_mid_write()
    assert io.read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_npz_round_trip_keeps_meta(tmp_path):
    io.write_npz(tmp_path / "x.npz", scores=np.arange(6.0).reshape(2, 3), meta={"config": {"seed": 3}})
    back = io.read_npz(tmp_path / "x.npz")
    from protolib.device import run_record

    assert back["meta"] == {"config": {"seed": 3}, "run": run_record()} and back["scores"].shape == (2, 3)


def test_truncated_npz_is_a_clear_error(tmp_path):
    io.write_npz(tmp_path / "x.npz", scores=np.zeros((50, 50)))
    data = (tmp_path / "x.npz").read_bytes()
    (tmp_path / "x.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="x.npz: unreadable array file"):
        io.read_npz(tmp_path / "x.npz")


def test_json_bytes_are_deterministic(tmp_path):
    io.write_json(tmp_path / "a.json", {"b": np.float64(0.5), "a": np.arange(3)})
    io.write_json(tmp_path / "b.json", {"a": [0, 1, 2], "b": 0.5})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_files_that_record_their_config_pass_their_own_integrity_check(tmp_path):
    """The ``run`` provenance entry io adds to a config-bearing record is part of what the digest
    covers: a file is read back as written (the digest was once taken before ``run`` was added,
    and every intermediate of a study was refused by the next job)."""
    from protolib import integrity

    record = {"config": {"seed": 0}, "ids": [1, 2]}
    integrity.write_json(tmp_path / "a.json", record)
    assert "run" in io.read_json(tmp_path / "a.json")
    assert integrity.read_json(tmp_path / "a.json", "split")["ids"] == [1, 2]
    integrity.write_npz(tmp_path / "a.npz", x=np.arange(3), meta={"config": {"seed": 0}})
    assert "run" in integrity.read_npz(tmp_path / "a.npz", "prepare")["meta"]
