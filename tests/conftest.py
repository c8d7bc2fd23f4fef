"""Shared fixtures (helpers that tests import live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from protolib import integrity
from tests.helpers import REPO, Study, run_study, study_config


@pytest.fixture(autouse=True)
def no_study_in_use():
    """A test that runs a job's stage in this process (protolib.job.run) leaves its study's
    settings for the readers (integrity.use_study); a job process ends with its job, a test does not."""
    yield
    integrity.use_study(None)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def small_study(tmp_path_factory) -> Study:
    """The small digits study (tests.helpers.study_config), run once per test session with
    Snakemake and shared by the end-to-end tests. A test that deletes outputs rebuilds them."""
    workdir = tmp_path_factory.mktemp("small_study")
    return run_study(workdir, study_config(workdir / "results"))
