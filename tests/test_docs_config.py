"""docs/configuration.md is generated from the schema and the constructors: it must match."""

from __future__ import annotations

import copy

from protolib import docs_config
from protolib.config import schema
from tests.helpers import REPO


def test_configuration_page_matches_the_generator():
    page = (REPO / docs_config.PAGE).read_text(encoding="utf-8")
    assert page == docs_config.render(), "docs/configuration.md is out of date: run python -m protolib.docs_config"


def test_every_schema_key_and_constructor_keyword_is_on_the_page():
    page = docs_config.render()
    for key in schema()["properties"]:
        assert f"`{key}" in page, key
    for key in schema()["$defs"]["dataset"]["properties"]:
        assert f"`datasets.<name>.{key}" in page, key
    for key in ("`selection.evolutionary.fitness`", "`selection.typical.tail`", "| `hidden_dims` |", "| `k` |"):
        assert key in page, key


def test_a_changed_schema_changes_the_page():
    """The comparison above can fail: a new key or description shows up in the rendering."""
    changed = copy.deepcopy(schema())
    changed["properties"]["seed"]["description"] = "a description no page holds"
    changed["$defs"]["dataset"]["properties"]["new_key"] = {"type": "integer", "minimum": 3}
    page = docs_config.render(changed)
    assert "a description no page holds" in page and "`datasets.<name>.new_key` | integer |  | ≥ 3" in page
    assert page != (REPO / docs_config.PAGE).read_text(encoding="utf-8")


def test_check_mode_reports_a_stale_page(tmp_path):
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n", encoding="utf-8")
    assert docs_config.main(["--check", "--out", str(stale)]) == 1
    assert docs_config.main(["--out", str(stale)]) == 0
    assert docs_config.main(["--check", "--out", str(stale)]) == 0
