"""The one adapter from a Snakemake job to a stage (protolib.job)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from types import SimpleNamespace

import pytest

from protolib import job, pipeline
from tests.helpers import REPO


class _Names(SimpleNamespace):
    """Stands in for a job's input/output/params/wildcards: every name gives "0"."""

    def __getattr__(self, name):
        return "0"

    def __getitem__(self, i):
        return "0"

    def __iter__(self):
        return iter(["0"])

    def get(self, name, default=None):
        return "0"


def _job(**named) -> SimpleNamespace:
    parts = {k: _Names() for k in ("input", "output", "params", "wildcards")}
    for part, values in named.items():
        parts[part] = SimpleNamespace(**values) if isinstance(values, dict) else values
    return SimpleNamespace(config={}, log=[], threads=1, rule="r", **parts)


@pytest.mark.parametrize("stage", sorted(job.KWARGS))
def test_every_stage_takes_the_keywords_the_adapter_gives(stage):
    """Fails when a stage's signature and the adapter disagree (a renamed or added parameter)."""
    kwargs = job.KWARGS[stage](_job())
    inspect.signature(getattr(pipeline, stage)).bind({}, **kwargs, settings=None)


def test_a_job_runs_its_stage_with_its_files_and_settings(monkeypatch):
    called = {}
    monkeypatch.setattr(pipeline, "make_split", lambda config, **kw: called.update(config=config, **kw))
    monkeypatch.setattr(job, "for_job", lambda config: {"for_job": config})
    smk = _job(
        wildcards={"dataset": "digits", "cls": "3"},
        input={"data": "d.npz"},
        output=["s.json"],
        params={"settings": {"seed": 0}},
    )
    job.run(smk, "make_split")
    assert called == {
        "config": {"for_job": {}},
        "dataset": "digits",
        "cls": 3,
        "data_path": "d.npz",
        "out": "s.json",
        "settings": {"seed": 0},
    }


def test_an_unknown_stage_is_named():
    with pytest.raises(ValueError, match="unknown stage 'fit'.*make_split"):
        job.run(_job(), "fit")


def test_a_stage_job_imports_neither_torch_nor_numba_before_its_stage():
    """The adapter itself is light: the job's thread setting must precede numba's import."""
    code = "import sys, protolib.job; print(sorted({'numba', 'torch', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
