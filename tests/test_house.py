"""House rules a reader checks by eye, checked by the suite: functions fit on a screen."""

from __future__ import annotations

import ast

from tests.helpers import REPO

MAX_LINES = 60


def _function_lengths() -> dict[str, int]:
    lengths = {}
    for path in sorted((REPO / "protolib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{path.relative_to(REPO).as_posix()}:{node.name}"  # methods of one name: the longest
                lengths[name] = max(lengths.get(name, 0), node.end_lineno - node.lineno + 1)
    return lengths


def test_no_function_in_protolib_is_longer_than_a_screen():
    lengths = _function_lengths()
    long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not long, f"functions over {MAX_LINES} lines (split them into named steps): {long}"
