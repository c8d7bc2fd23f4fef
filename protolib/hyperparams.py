"""Hyper-parameters of registered detectors and selectors, read from their constructors.

A detector or selector takes its settings as keyword-only constructor arguments with their
defaults, scikit-learn style (``def __init__(self, *, k=2, ...)``): that signature is the one
place a default lives. A config block (``models.<name>``, ``selection.<method>``) gives only what
differs; :func:`build` passes its keys as keywords, and :func:`protolib.config.validate` checks
them with :func:`settings_problems` before any job runs, for built-in and plugin classes alike:
names against the signature, values against its type hints (so a new setting needs no schema
entry; the schema may add ranges and enums for the built-in ones, tests/test_hyperparams.py).
"""

from __future__ import annotations

import inspect
import numbers
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

#: given by the run (``device``: the config's top level), never by a settings block
RUN_ARGUMENTS = ("device",)


def hyper_parameters(factory: Callable[..., Any]) -> dict[str, Any]:
    """Keyword-only parameters of a class (its ``__init__``) or function -> their defaults
    (``inspect.Parameter.empty`` where there is none), run arguments left out."""
    return {
        p.name: p.default
        for p in inspect.signature(factory).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in RUN_ARGUMENTS
    }


#: the JSON types (as YAML gives them) of the Python types a keyword may be hinted with
JSON_TYPES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    tuple: "array",
    list: "array",
    dict: "object",
    type(None): "null",
}


def json_types(factory: Callable[..., Any]) -> dict[str, set[str]]:
    """Keyword -> the JSON types its type hint allows (``int | None`` -> integer, null); keywords
    without a hint, or with one outside :data:`JSON_TYPES` (``Any``), are left out."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # a hint that does not evaluate (a plugin's forward reference): names only
        return {}
    out = {}
    for name in hyper_parameters(factory):
        hint = hints.get(name)
        parts = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        kinds = {JSON_TYPES.get(typing.get_origin(p) or p) for p in parts}
        if kinds and None not in kinds:
            # a float keyword takes an int too (YAML reads 1 as an int, 1.0 and 1e-3 as floats)
            out[name] = kinds | ({"integer"} if "number" in kinds else set())
    return out


def _json_type(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, numbers.Integral):
        return "integer"
    if isinstance(value, numbers.Real):
        return "number"
    return next((name for kind, name in JSON_TYPES.items() if kind is not bool and isinstance(value, kind)), "unknown")


def settings_problems(
    key: str, what: str, factory: Callable[..., Any], settings: dict[str, Any], also_allowed: Iterable[str] = ()
) -> list[str]:
    """Keys of ``settings`` (config block ``key``) that ``factory`` does not take, and keywords it
    needs that are missing; each message names the key and the allowed ones."""
    params = hyper_parameters(factory)
    allowed = sorted(set(params) | set(also_allowed))
    shown = ", ".join(allowed) or "none"
    problems = [f"{key}.{name}: not a setting of {what}; allowed: {shown}" for name in settings if name not in allowed]
    problems += [
        f"{key}.{name}: required by {what} (no default)"
        for name, default in params.items()
        if default is inspect.Parameter.empty and name not in settings
    ]
    allowed_types = json_types(factory)
    for name, value in settings.items():
        if name in allowed_types and _json_type(value) not in allowed_types[name]:
            problems.append(
                f"{key}.{name}: {value!r} is not of type {' or '.join(sorted(allowed_types[name]))}, "
                f"as {what} declares it"
            )
    return problems


def build(
    factory: Callable[..., Any],
    settings: dict[str, Any],
    optional: dict[str, Any] | None = None,
    key: str = "settings",
    what: str = "it",
) -> Any:
    """``factory(**settings)``, plus those ``optional`` keywords its signature takes (the run's
    device; a model block's feature-cache keys for a detector that does not use them). Settings
    it does not take are a ValueError naming them (outside the workflow, e.g. ``protolib rank``)."""
    problems = settings_problems(key, what, factory, settings, [k for k in optional or {} if k not in RUN_ARGUMENTS])
    if problems:
        raise ValueError("; ".join(problems))
    accepted = inspect.signature(factory).parameters
    extra = {k: v for k, v in (optional or {}).items() if k in accepted}
    return factory(**settings, **extra)
