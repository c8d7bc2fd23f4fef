"""The selector interface: ``select(context, M, rng) -> Selection``.

A selector class is its own registry entry: ``@SELECTORS.register("name")`` on a class whose
constructor takes its hyper-parameters as keywords with their defaults (``protolib.hyperparams``);
the config block ``selection.<name>`` gives the keywords to change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protolib.hyperparams import build, settings_problems
from protolib.registry import Registry

#: keys of the ``selection`` block that are not a method's settings: the subset sizes, the
#: methods, and ``manual``'s id lists (dataset -> class -> ids; ``protolib.config.manual_lists``)
NOT_SETTINGS = ("M", "methods", "manual")


@dataclass
class SelectionContext:
    """What a selector may use. Ids are global dataset ids; rows of the matrix follow ``candidates``."""

    candidates: np.ndarray
    score_matrix: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    sample_auroc: np.ndarray | None = None
    pool_ids: np.ndarray | None = None
    pool_features: np.ndarray | None = None
    manual_ids: list[int] | None = None
    train_ids: np.ndarray | None = None


@dataclass
class Selection:
    ids: list[int]
    fitness: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Selector(ABC):
    name: str = "selector"

    #: how many seeded repeats the study runs (random: config's ``repeats``; others: 1)
    def repeats(self) -> int:
        return 1

    @abstractmethod
    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection: ...

    @staticmethod
    def _check_size(context: SelectionContext, M: int, pool: int | None = None) -> None:
        pool = len(context.candidates) if pool is None else pool
        if pool < M:
            raise ValueError(f"M = {M} is larger than the {pool} samples to choose from")


SelectorFactory = Callable[..., Selector]
SELECTORS: Registry[SelectorFactory] = Registry("selection method")


def method_settings(selection_cfg: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """The settings block of one method (``selection.<name>``; none for ``manual``)."""
    return {} if name in NOT_SETTINGS else dict((selection_cfg or {}).get(name) or {})


def make_selector(name: str, selection_cfg: dict[str, Any] | None = None) -> Selector:
    """Build a selector from the ``selection`` config block (its own sub-block holds settings)."""
    return build(
        SELECTORS.get(name),
        method_settings(selection_cfg, name),
        key=f"selection.{name}",
        what=f"selection method {name!r}",
    )


def selection_problems(selection_cfg: dict[str, Any]) -> list[str]:
    """Every ``selection.<method>`` block: a registered method, and only keys its class takes."""
    problems = []
    for name in selection_cfg:
        if name in NOT_SETTINGS:
            continue
        if name not in SELECTORS:
            problems.append(
                f"selection.{name}: not a setting of selection and not a selection method; "
                f"allowed: {', '.join([*NOT_SETTINGS[:2], *SELECTORS.names()])}"
            )
            continue
        problems += settings_problems(
            f"selection.{name}", f"selection method {name!r}", SELECTORS.get(name), method_settings(selection_cfg, name)
        )
    return problems
