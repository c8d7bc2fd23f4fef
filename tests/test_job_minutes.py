"""benchmarks/job_minutes.py: it compares each GPU job's estimate with the runtime the rule
requests (protolib.slurm.runtime_minutes on the config with the schema's defaults), marks and
exits 1 on a job over its request, and prints a runtime_minutes block to paste. The detectors'
cost is given here (a ModelCost), not measured: measuring ResNet152 takes many minutes on a CPU.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import yaml

from protolib.config import validate
from protolib.slurm import runtime_minutes
from tests.helpers import REPO, small_config


@pytest.fixture(scope="module")
def job_minutes():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("job_minutes", REPO / "benchmarks" / "job_minutes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_requests_are_the_rules_own(job_minutes, tmp_path):
    """The table's request is what the rules ask for: the validated config's defaults."""
    paper = job_minutes.with_runtime_defaults(yaml.safe_load((REPO / "config" / "paper.yaml").read_text()))
    validated = validate(small_config(tmp_path / "results"))
    assert paper["runtime_minutes"] == validated["runtime_minutes"]
    for rule in ("features", "score_chunk", "evaluate_random", "evaluate_full"):
        assert runtime_minutes(paper, rule) == runtime_minutes(validated, rule)
    assert [job_minutes.runtime_key(r) for r in ("evaluate_random", "evaluate_full", "transfer_x", "score_chunk")] == [
        "evaluate",
        "evaluate_full",
        "transfer",
        "score_chunk",
    ]
    assert [job_minutes.recommended(m, 1.5, 60) for m in (0.1, 40, 41, 88)] == [60, 60, 90, 150]


def cost(job_minutes, flops_per_step: float):
    """A trained detector whose every training step costs ``flops_per_step`` per image."""
    return job_minutes.ModelCost(
        backbone_per_image=1e9,
        fit_single=1e9,
        fit_fixed=1e9,
        fit_per_image=1e9,
        fit_per_image_step=flops_per_step,
        steps=2000,
        train_batch=32,
        score_per_image=1e9,
        matrix_per_candidate=1e9,
        matrix_per_val=1e9,
        matrix_per_pair=1e6,
        seconds_per_flop=1e-9,
        parallel_on_gpu=1,
        trains_per_candidate=False,
    )


@pytest.mark.parametrize(("flops_per_step", "fits"), [(1e10, True), (1e12, False)])
def test_a_job_over_its_request_is_marked_and_fails(job_minutes, monkeypatch, capsys, tmp_path, flops_per_step, fits):
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    config["runs"] = [{"dataset": "cifar10", "model": "panda"}]
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setattr(job_minutes, "measure_model", lambda cfg, device: cost(job_minutes, flops_per_step))
    monkeypatch.setattr(sys, "argv", ["job_minutes.py", "--config", str(path), "--tflops", "10"])
    assert job_minutes.main() == (0 if fits else 1)
    out = capsys.readouterr().out
    rows = {line.split(" | ")[1]: line for line in out.splitlines() if line.startswith("| cifar10 / panda |")}
    assert set(rows) == {
        "features",
        "score_chunk",
        "evaluate_greedy",
        "evaluate_evolutionary",
        "evaluate_gmm",
        "evaluate_random",
        "evaluate_full",
    }
    # random: 10 repeats x M in {5, 10, 25} x 2000 steps x flops_per_step, plus the fits on one
    # image and the test set scored after each of the 40 fits (< 10 % here)
    minutes = 10 * 40 * 2000 * flops_per_step / 10e12 / 60
    estimate = float(rows["evaluate_random"].split(" | ")[3])
    assert minutes <= estimate <= 1.1 * minutes
    assert rows["evaluate_random"].endswith("| yes |" if fits else "| NO |")
    block = yaml.safe_load(out[out.index("runtime_minutes:") :])["runtime_minutes"]
    assert set(block) == {"features", "score_chunk", "evaluate", "evaluate_full"}
    assert block["evaluate"] == job_minutes.recommended(estimate, 1.5, 60) or not fits
