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
import traceback
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
        except Exception as err:
            problems.append(
                f"plugins[{i}]: importing module {module!r} raised {type(err).__name__}: {err} "
                f"({_where(err)}); fix the module"
            )
    return problems


def _where(err: BaseException) -> str:
    """file:line of the innermost frame of an error's traceback (where the module raised it)."""

    frames = traceback.extract_tb(err.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "no traceback"
