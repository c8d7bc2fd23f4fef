"""Extensions from outside protolib: the modules a config names under ``plugins``.

A plugin module registers detectors, selectors or datasets when imported (the registries'
``register`` decorators). The config names it, ``plugins: [my_lab.detectors]``, so the study
and everything it records say which code it ran with; :func:`protolib.config.validate` imports
the modules before checking names against the registries, and it runs in the Snakefile and in
every job (separate processes), so the workflow and its jobs all see the same registrations.
A module must be importable where the jobs run: inside the checkout (the Snakefile puts it on
PYTHONPATH) or on the PYTHONPATH the jobs inherit.
"""

from __future__ import annotations

import importlib
from typing import Any


def import_plugins(config: dict[str, Any]) -> list[str]:
    """Import every module of ``config["plugins"]``; the problems found, each naming its key."""
    problems = []
    for i, module in enumerate(config.get("plugins") or []):
        try:
            importlib.import_module(module)
        except ImportError as err:
            problems.append(
                f"plugins[{i}]: cannot import module {module!r} ({err}); it must be importable by the "
                "workflow and its jobs (inside the checkout, or on PYTHONPATH)"
            )
    return problems
