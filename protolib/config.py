"""Load and validate a study configuration before any job runs.

JSON-schema validation catches shape and type errors; :func:`check_semantics` catches what a
schema cannot express (names that must exist in a registry, cross references, M against the
candidate pool). Every message names the key at fault, the value and what is allowed.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what is expected."""


def schema() -> dict[str, Any]:
    text = resources.files("protolib").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _extend_with_defaults(validator_class: type) -> type:
    """A validator that fills in ``default`` values while it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema_)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultingValidator = _extend_with_defaults(jsonschema.Draft202012Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{key}: {error.message}; allowed keys: {', '.join(allowed)}"
    if error.validator == "oneOf" and error.context:
        expected = "; or ".join(sorted({c.message for c in error.context}))
        return f"{key}: {error.instance!r} is not allowed ({expected})"
    return f"{key}: {error.message}"


def validate(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate ``config`` in place (defaults filled in) and return it; raise ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a mapping of settings, got {type(config).__name__}")
    errors = sorted(_DefaultingValidator(schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = "\n  ".join(_describe(e) for e in errors)
        raise ConfigError(f"{source} is invalid:\n  {lines}")
    check_semantics(config, source)
    return config


def check_semantics(config: dict[str, Any], source: str = "config") -> None:
    from protolib.data import DATASETS
    from protolib.data.base import class_list
    from protolib.models import DETECTORS, backbone_names
    from protolib.selection import SELECTORS

    problems: list[str] = []
    for name, ds in config["datasets"].items():
        ds.setdefault("loader", name)
        if ds["loader"] not in DATASETS:
            problems.append(
                f"datasets.{name}.loader: unknown dataset {ds['loader']!r}; allowed: {', '.join(DATASETS.names())}"
            )
        if ds.get("root") and not Path(ds["root"]).expanduser().exists() and not ds.get("download"):
            problems.append(
                f"datasets.{name}.root: folder {ds['root']!r} does not exist (set download: true "
                "on a machine with the network, or point root at the dataset's official files)"
            )
        try:
            class_list(ds)
        except KeyError as err:
            problems.append(f"datasets.{name}.classes: {err.args[0]}")
        except Exception:  # unknown loader, reported above
            pass
        if max(config["selection"]["M"]) > ds["candidates"]:
            problems.append(
                f"selection.M: {max(config['selection']['M'])} is larger than "
                f"datasets.{name}.candidates = {ds['candidates']}"
            )
    for name, model in config["models"].items():
        if model["detector"] not in DETECTORS:
            problems.append(
                f"models.{name}.detector: unknown detector {model['detector']!r}; allowed: {', '.join(DETECTORS.names())}"
            )
        if model.get("backbone", "pixels") not in backbone_names():
            problems.append(
                f"models.{name}.backbone: unknown backbone {model['backbone']!r}; allowed: {', '.join(backbone_names())}"
            )
        weights = model.get("weights", "none")
        if weights not in ("none", "imagenet") and not Path(weights).expanduser().is_file():
            problems.append(
                f"models.{name}.weights: file {weights!r} not found; use 'imagenet' (torchvision "
                "downloads and caches the weights where the machine has the network), a path to a "
                "state_dict file, or 'none'"
            )
    for i, run in enumerate(config["runs"]):
        if run["dataset"] not in config["datasets"]:
            problems.append(
                f"runs[{i}].dataset: {run['dataset']!r} is not a key of datasets ({', '.join(config['datasets'])})"
            )
        if run["model"] not in config["models"]:
            problems.append(
                f"runs[{i}].model: {run['model']!r} is not a key of models ({', '.join(config['models'])})"
            )
    for method in config["selection"]["methods"]:
        if method not in SELECTORS:
            problems.append(
                f"selection.methods: unknown method {method!r}; allowed: {', '.join(SELECTORS.names())}"
            )
    if "manual" in config["selection"]["methods"]:
        manual = config["selection"].get("manual", {})
        for run in config["runs"]:
            if run["dataset"] not in manual:
                problems.append(
                    f"selection.manual.{run['dataset']}: method 'manual' needs a list of ids per class "
                    "for every dataset of runs"
                )
                continue
            for cls, ids in manual[run["dataset"]].items():
                if len(ids) < max(config["selection"]["M"]):
                    problems.append(
                        f"selection.manual.{run['dataset']}.{cls}: {len(ids)} ids, fewer than the largest "
                        f"M = {max(config['selection']['M'])} (subsets take the first M ids of the list)"
                    )
    report = config.get("report", {}).get("fig2")
    if report:
        if report.get("dataset") and report["dataset"] not in config["datasets"]:
            problems.append(f"report.fig2.dataset: {report['dataset']!r} is not a key of datasets")
        if report.get("model") and report["model"] not in config["models"]:
            problems.append(f"report.fig2.model: {report['model']!r} is not a key of models")
    if problems:
        raise ConfigError(f"{source} is invalid:\n  " + "\n  ".join(problems))


def load(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            config = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    return validate(config, str(path))


def dataset_config(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    return config["datasets"][dataset]


def model_config(config: dict[str, Any], model: str) -> dict[str, Any]:
    return config["models"][model]


def for_job(snakemake_config: dict[str, Any]) -> dict[str, Any]:
    """The validated config inside a Snakemake job (defaults filled in again, the same way)."""
    return validate(copy.deepcopy(dict(snakemake_config)), "workflow config")
