"""Shared fixtures (helpers that tests import live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import REPO


@pytest.fixture
def repo() -> Path:
    return REPO
