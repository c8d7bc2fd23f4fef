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
                # the body, docstring included: the signature's height is the formatter's (one
                # parameter a line once it is long), not the function's
                lengths[name] = max(lengths.get(name, 0), node.end_lineno - node.body[0].lineno + 1)
    return lengths


def test_no_function_in_protolib_is_longer_than_a_screen():
    lengths = _function_lengths()
    long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not long, f"functions over {MAX_LINES} lines (split them into named steps): {long}"


def _protolib_imports() -> dict[str, set[str]]:
    """Module -> the protolib modules it imports, at module level or inside a function."""
    modules = {}
    for path in sorted((REPO / "protolib").rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # `from protolib.x import y`: y is a module, or a name in x
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (depth-first search), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_import_cycle_among_protolib_modules():
    """Function-level imports count too: a cycle hidden inside a function is still a cycle."""
    cycle = _cycle(_protolib_imports())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def _explained(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or above it or above the run of imports it ends (one
    comment may give the reason for adjacent imports)."""
    if "#" in lines[lineno - 1]:
        return True
    above = lineno - 2
    while above >= 0 and lines[above].lstrip().startswith(("import ", "from ")):
        above -= 1
    return above >= 0 and lines[above].lstrip().startswith("#")


def _unexplained_function_level_imports() -> list[str]:
    """``path:line`` of each import inside a function without a comment saying why (see :func:`_explained`)."""
    found = []
    for path in sorted((REPO / "protolib").rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        inside = {
            id(node)
            for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(f)
            if isinstance(node, (ast.Import, ast.ImportFrom))
        }
        for node in ast.walk(tree):
            if id(node) not in inside:
                continue
            if not _explained(lines, node.lineno):
                found.append(f"{path.relative_to(REPO).as_posix()}:{node.lineno}")
    return found


#: Function-level imports without a reason: none; a new one states its reason (it saves job
#: start-up, say) in a comment.
UNEXPLAINED_IMPORTS = 0


def test_function_level_imports_say_why():
    found = _unexplained_function_level_imports()
    assert len(found) <= UNEXPLAINED_IMPORTS, f"{len(found)} > {UNEXPLAINED_IMPORTS}: give a reason comment: {found}"


def test_a_reason_covers_the_imports_under_it_only():
    lines = [
        "def f():",
        "    # here: torch only on a GPU",
        "    import torch",
        "    import torch.nn as nn",
        "",
        "    import faiss",
    ]
    assert [_explained(lines, n) for n in (3, 4, 6)] == [True, True, False]
    assert _explained(["def f():", "    import faiss  # here: the CPU search only"], 2)
