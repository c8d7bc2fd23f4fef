"""Never a silent CPU run: a GPU given (CUDA_VISIBLE_DEVICES, as SLURM sets it) or named
(`device: cuda`) that torch cannot use stops with a message naming what it saw; `device: auto`
without any GPU runs on the CPU; the device is recorded (protolib.device, protolib.io)."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from snakemake.iocontainers import ResourceList

from protolib import device, io
from tests.helpers import REPO, small_config, snakemake, write_config


def usable_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture
def no_cuda(monkeypatch):
    """torch that cannot reach a GPU, on any machine (this one has none; a GPU machine's too)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "driver_error", lambda: "Found no NVIDIA driver on your system.")
    monkeypatch.setattr(device, "_resolved", [])


def test_auto_with_a_granted_gpu_that_torch_cannot_use_stops(monkeypatch, no_cuda):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(device.DeviceError) as err:
        device.resolve_device("auto")
    message = str(err.value)
    version, cuda = device.torch_build()
    assert "CUDA_VISIBLE_DEVICES='0'" in message
    assert f"torch {version}" in message
    assert (f"built for CUDA {cuda}" if cuda else "a CPU-only build") in message
    assert "Found no NVIDIA driver" in message
    assert "--config device=cpu" in message and "docs/cluster.md" in message
    assert device._resolved == []  # nothing ran on the CPU instead


@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_device_cuda_without_a_usable_gpu_stops(monkeypatch, no_cuda, name):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(device.DeviceError, match=f"^device: {name}, but torch cannot use a CUDA GPU here"):
        device.resolve_device(name)


@pytest.mark.parametrize("hidden", [None, "", "-1"])
def test_auto_without_a_gpu_is_the_cpu_and_recorded(monkeypatch, no_cuda, hidden):
    """The laptop case: no GPU visible (or GPUs hidden) -> cpu, and the record says so."""
    if hidden is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
    assert device.resolve_device("auto") == "cpu"
    record = device.run_record()
    assert record["device"] == "cpu" and record["gpu"] is None
    assert record["torch"] == device.torch_build()[0]


def test_torch_build_is_the_same_with_and_without_importing_torch():
    """CPU jobs read torch's version without importing it: the record must not depend on that."""
    import torch

    code = (
        "import sys; from protolib.device import torch_build; print(list(torch_build())); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.splitlines() == [json.dumps([torch.__version__, torch.version.cuda]).replace('"', "'"), "False"]


def test_outputs_that_record_their_config_record_the_device(tmp_path, monkeypatch):
    monkeypatch.setattr(device, "_resolved", ["cpu"])
    io.write_json(tmp_path / "a.json", {"x": 1, "config": {"seed": 0}})
    io.write_npz(tmp_path / "b.npz", a=[1, 2], meta={"config": {"seed": 0}})
    io.write_json(tmp_path / "c.json", {"x": 1})  # no config: not a result file, left as given
    assert json.loads((tmp_path / "a.json").read_text())["run"] == device.run_record()
    assert io.read_npz(tmp_path / "b.npz")["meta"]["run"]["device"] == "cpu"
    assert "run" not in json.loads((tmp_path / "c.json").read_text())


@pytest.mark.parametrize("visible", ["0", None])
def test_a_gpu_job_given_a_gpu_it_cannot_use_fails_at_its_start(tmp_path, visible):
    """A job of a GPU rule (resources declare `gpu`, in Snakemake's own ResourceList, whose `in`
    looks at the values: `"gpu" in resources` is False),
    run as SLURM runs it (CUDA_VISIBLE_DEVICES set), stops in its first line, before any work;
    the message is on the terminal and in the log.
    Without CUDA_VISIBLE_DEVICES the same job runs on the CPU and its log's first line says so."""
    if usable_gpu():
        pytest.skip("a usable GPU here: the job rightly runs on it")
    code = (
        "import sys, pickle; from protolib.joblog import to_rule_log\n"
        "smk = pickle.load(open(sys.argv[1], 'rb'))\n"
        "to_rule_log(smk)\n"
        "print('work started')\n"
    )
    import pickle

    log = tmp_path / "job.log"
    (tmp_path / "smk.pkl").write_bytes(
        pickle.dumps(
            SimpleNamespace(
                rule="score_chunk",
                resources=ResourceList(fromdict={"gpu": 1, "mem_mb": 8000}),
                config={"device": "auto"},
                log=[str(log)],
            )
        )
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PYTHONPATH"] = str(REPO)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "smk.pkl")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = log.read_text()
    if visible is None:
        assert proc.returncode == 0, proc.stderr
        assert text.splitlines()[0].startswith("protolib: rule score_chunk on device cpu (torch "), text
        return
    assert proc.returncode != 0
    assert "work started" not in text
    assert "DeviceError: device: auto with a GPU granted (CUDA_VISIBLE_DEVICES=0)" in proc.stderr
    assert "CUDA_VISIBLE_DEVICES='0'" in text and "driver:" in text


def test_a_cpu_rule_job_neither_resolves_a_device_nor_imports_torch(tmp_path):
    code = (
        "import sys, pickle; from protolib.joblog import to_rule_log\n"
        "smk = pickle.load(open(sys.argv[1], 'rb'))\n"
        "to_rule_log(smk)\n"
        "print('torch' in sys.modules)\n"
    )
    import pickle

    log = tmp_path / "job.log"
    (tmp_path / "smk.pkl").write_bytes(
        pickle.dumps(
            SimpleNamespace(
                rule="split",
                resources=ResourceList(fromdict={"mem_mb": 4000}),
                config={"device": "cuda"},
                log=[str(log)],
            )
        )
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "smk.pkl")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines[0].startswith("protolib: rule split on device cpu ("), lines
    assert lines[1] == "False"


@pytest.mark.slow
def test_device_cuda_is_refused_before_any_job_on_a_machine_without_gpu(tmp_path):
    if device.gpu_device_files():
        pytest.skip("this machine has GPU device files")
    path = write_config(tmp_path / "study.yaml", small_config(tmp_path / "results", device="cuda"))
    proc = snakemake("--cores", "1", "--configfile", str(path), workdir=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "error: device: cuda, but this machine has no GPU" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "results").exists(), "a job ran before the check"
