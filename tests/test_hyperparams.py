"""Hyper-parameters: each detector's and selector's defaults live in its constructor's signature
only. The validator checks a config block's names and value types against that signature (so a
new setting needs no schema entry); the schema adds ranges and enums for built-in keys, and may
name no key the classes do not take, no type they do not declare, and no second default."""

from __future__ import annotations

import inspect

import pytest

from protolib.config import schema
from protolib.hyperparams import hyper_parameters, json_types
from protolib.models import DETECTORS, make_detector
from protolib.models.backbones import FEATURE_DEFAULTS
from protolib.selection import SELECTORS, make_selector
from protolib.selection.base import NOT_SETTINGS


def _builtin(registry) -> dict[str, type]:
    """Name -> class of protolib's own entries (plugins registered by other tests left out)."""
    classes = {name: registry.get(name) for name in registry.names()}
    return {name: cls for name, cls in classes.items() if cls.__module__.startswith("protolib.")}


DETECTOR_CLASSES = _builtin(DETECTORS)
SELECTOR_CLASSES = _builtin(SELECTORS)
MODEL_SCHEMA = schema()["$defs"]["model"]["properties"]
SELECTION_SCHEMA = schema()["properties"]["selection"]["properties"]


@pytest.mark.parametrize("cls", [*DETECTOR_CLASSES.values(), *SELECTOR_CLASSES.values()], ids=lambda c: c.__name__)
def test_every_setting_is_a_keyword_with_a_default(cls):
    params = inspect.signature(cls).parameters.values()
    assert all(p.kind is p.KEYWORD_ONLY for p in params), f"{cls.__name__}: settings are keyword-only"
    missing = [name for name, default in hyper_parameters(cls).items() if default is inspect.Parameter.empty]
    assert not missing, f"{cls.__name__}: no default for {missing}"


@pytest.mark.parametrize("cls", [*DETECTOR_CLASSES.values(), *SELECTOR_CLASSES.values()], ids=lambda c: c.__name__)
def test_every_keyword_has_a_type_the_validator_checks(cls):
    assert set(json_types(cls)) == set(hyper_parameters(cls))


def _schema_types(spec: dict) -> set[str]:
    if "enum" in spec:
        return {"string"}
    if "oneOf" in spec:
        return set().union(*(_schema_types(s) for s in spec["oneOf"]))
    if "const" in spec:
        return {"string"}
    kinds = spec["type"]
    return {kinds} if isinstance(kinds, str) else set(kinds)


def _check_block(listed: dict, classes: list[type], where: str) -> None:
    for key, spec in listed.items():
        takers = [cls for cls in classes if key in hyper_parameters(cls)]
        assert takers, f"{where}.{key}: in the schema, but no constructor takes it"
        for cls in takers:
            assert _schema_types(spec) <= json_types(cls)[key], f"{where}.{key}: schema type not {cls.__name__}'s"


def test_the_model_schema_names_only_keywords_of_a_detector_with_their_types():
    listed = {k: v for k, v in MODEL_SCHEMA.items() if k != "detector" and k not in FEATURE_DEFAULTS}
    _check_block(listed, list(DETECTOR_CLASSES.values()), "models.<name>")


def test_the_selection_schema_names_only_keywords_of_its_selector_with_their_types():
    for name, cls in SELECTOR_CLASSES.items():
        if name in NOT_SETTINGS:
            assert not hyper_parameters(cls), f"{name}: its config block is not its settings"
            continue
        _check_block(SELECTION_SCHEMA.get(name, {}).get("properties", {}), [cls], f"selection.{name}")
    blocks = set(SELECTION_SCHEMA) - set(NOT_SETTINGS)
    assert blocks <= set(SELECTOR_CLASSES), "a schema block for no selector"


def test_a_schema_default_never_copies_a_hyper_parameter():
    """The signature is the one place: a default in the schema would be filled into the config
    (and so override the class) -- for detectors even across detectors (one model block)."""
    blocks = [
        MODEL_SCHEMA,
        *(
            SELECTION_SCHEMA[name]["properties"]
            for name in SELECTOR_CLASSES
            if name in SELECTION_SCHEMA and name not in NOT_SETTINGS
        ),
    ]
    defaults = [key for block in blocks for key, spec in block.items() if "default" in spec]
    assert defaults == []


def test_the_feature_cache_defaults_are_knns():
    """knn scores the cached features, so its backbone keywords default to the cache's."""
    knn = hyper_parameters(DETECTOR_CLASSES["knn"])
    assert {key: knn[key] for key in FEATURE_DEFAULTS} == FEATURE_DEFAULTS


def test_the_factories_pass_a_blocks_keys_as_keywords():
    knn = make_detector({"detector": "knn", "backbone": "pixels", "k": 5}, device="cpu")
    assert knn.get_params() == {**FEATURE_DEFAULTS, "k": 5}
    gmm = make_selector("gmm", {"gmm": {"pool": "candidates"}})
    assert (gmm.pool, gmm.covariance_type, gmm.max_iter) == ("candidates", "diag", 100)
    with pytest.raises(
        ValueError,
        match="selection.typical.neighbors: not a setting of selection method 'typical'; "
        "allowed: metric, neighbours, pool, tail",
    ):
        make_selector("typical", {"typical": {"neighbors": 3}})
