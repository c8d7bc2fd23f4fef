"""Load and validate a study configuration before any job runs.

JSON-schema validation catches shape and type errors; :func:`check_semantics` catches what a
schema cannot express (names that must exist in a registry, cross references, M against the
candidate pool). Every message names the key at fault, the value and what is allowed.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from protolib.errors import ConfigError
from protolib.figures.registry import figures
from protolib.plugins import import_plugins

if TYPE_CHECKING:
    import jsonschema

#: far above any study's config (config/paper.yaml: ~7 kB, a few hundred values), far below harm
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_VALUES = 100_000
#: a validation message's longest line
MAX_MESSAGE = 500


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

    # here: jobs never validate, so they skip importing jsonschema
    import jsonschema

    return jsonschema.validators.extend(_whole_numbers_are_ints(validator_class), {"properties": set_defaults})


def _whole_numbers_are_ints(validator_class: type) -> type:
    """JSON Schema's ``integer`` takes 5.0; a config's whole number must be an int: 5.0 would
    name a subset M5.0 or slice an array with a float."""
    # here: jobs never validate, so they skip importing jsonschema
    import jsonschema

    types = validator_class.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return jsonschema.validators.extend(validator_class, type_checker=types)


@functools.cache
def _defaulting_validator() -> type:
    """Built on first use: a job never validates, and importing jsonschema costs ~0.5 s."""
    # here: jobs never validate, so they skip importing jsonschema
    import jsonschema

    return _extend_with_defaults(jsonschema.Draft202012Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _describe(error: jsonschema.ValidationError, overrides: set[str]) -> str:
    key = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        line = f"{key}: {error.message}; allowed keys: {', '.join(allowed)}"
        extra = (
            set(error.instance) - set(error.schema.get("properties", {})) if isinstance(error.instance, dict) else set()
        )
        top = extra if not error.absolute_path else {str(error.absolute_path[0])}
    elif error.validator == "oneOf" and error.context:
        expected = "; or ".join(sorted({c.message for c in error.context}))
        line = f"{key}: {error.instance!r} is not allowed ({expected})"
        top = {str(error.absolute_path[0])} if error.absolute_path else set()
    else:
        line = f"{key}: {error.message}"
        top = {str(error.absolute_path[0])} if error.absolute_path else set()
    if len(line) > MAX_MESSAGE:  # a value built up through YAML aliases can be megabytes long
        line = line[:MAX_MESSAGE] + " ... (shortened)"
    if top and top <= overrides:
        line += " (set by --config)"
        if error.validator in ("type", "oneOf") and isinstance(error.instance, str) and error.absolute_path:
            line += "; Snakemake reads a value nested in --config as text: set it in a second --configfile"
    return line


def _values(node: Any, sizes: dict[int, int]) -> int:
    """How many values ``node`` holds once its YAML aliases are expanded (each shared node counted once)."""
    if id(node) not in sizes:
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        sizes[id(node)] = 1 + sum(_values(child, sizes) for child in children)
    return sizes[id(node)]


def check_mapping(config: Any, source: str) -> None:
    """A config file's content must be a mapping of settings (not a list, a scalar or nothing)."""
    if not isinstance(config, dict):
        got = "nothing (an empty file)" if config is None else f"a {type(config).__name__} ({str(config)[:60]!r})"
        raise ConfigError(
            f"{source}: expected a mapping of settings (key: value lines, e.g. results: results), got {got}"
        )


def validate(config: dict[str, Any], source: str = "config", overrides: set[str] | None = None) -> dict[str, Any]:
    """Validate ``config`` in place (defaults filled in) and return it; raise ConfigError.

    The one validator: the Snakefile (:func:`validate_workflow`), ``protolib validate-config``
    (:func:`load`) run it, and every job receives the config it validated (:func:`for_job`)."""
    check_mapping(config, source)
    errors = sorted(
        _defaulting_validator()(schema()).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]
    )
    if errors:
        lines = "\n  ".join(_describe(e, overrides or set()) for e in errors)
        raise ConfigError(f"{source} is invalid:\n  {lines}")
    from protolib.plugins import import_plugins  # before names are checked against the registries

    problems = import_plugins(config)
    if problems:
        raise ConfigError(f"{source} is invalid:\n  " + "\n  ".join(problems))
    check_semantics(config, source)
    config["results"] = str(Path(config["results"]).expanduser())  # Snakemake would make a folder named ~
    return config


def check_semantics(config: dict[str, Any], source: str = "config") -> None:
    """What a schema cannot express; every problem found is listed in one ConfigError. Each
    detector's and selector's settings are checked against its constructor (which imports its
    module: torch for most detectors; jobs skip this, see :func:`for_job`)."""
    problems = (
        _results_problems(config)
        + _dataset_problems(config)
        + _model_problems(config)
        + _pixels_problems(config)
        + _run_problems(config)
        + _selection_problems(config)
        + _manual_problems(config)
        + transfer_problems(config)
        + _report_name_problems(config)
    )
    if not problems:  # figures resolve against datasets, runs and transfer entries known to be sound
        problems = report_problems(config)
    if problems:
        raise ConfigError(f"{source} is invalid:\n  " + "\n  ".join(problems))


def _results_problems(config: dict[str, Any]) -> list[str]:
    results = config["results"]
    if not results.strip():
        return ["results: empty; expected the folder every output is written under (e.g. results)"]
    path = Path(results).expanduser()
    if path.exists() and not path.is_dir():
        return [f"results: {results!r} is an existing file, not a folder; name a folder (created if missing)"]
    return []


def _dataset_problems(config: dict[str, Any]) -> list[str]:
    # here: the registries (numpy, every dataset module) load on validation, not in every job
    from protolib.data import DATASETS
    from protolib.data.base import CLASS_NAMES, SPLIT_PROTOCOLS, class_list

    problems = []
    largest_M = max(config["selection"]["M"])
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
        elif ds.get("root") and Path(ds["root"]).expanduser().exists() and not Path(ds["root"]).expanduser().is_dir():
            problems.append(
                f"datasets.{name}.root: {ds['root']!r} is a file, not a folder; point root at the folder "
                "that holds the dataset's official files"
            )
        if ds["loader"] in CLASS_NAMES:  # an unknown loader is reported above, once
            try:
                class_list(ds)
            except KeyError as err:
                problems.append(f"datasets.{name}.classes: {err.args[0]}")
        problems += _unread_keys(name, ds)
        if largest_M > ds["candidates"]:
            problems.append(f"selection.M: {largest_M} is larger than datasets.{name}.candidates = {ds['candidates']}")
        train = ds["split"].get("train")
        one_vs_rest = ds["loader"] in CLASS_NAMES and ds["loader"] not in SPLIT_PROTOCOLS
        if one_vs_rest and isinstance(train, int) and not isinstance(train, bool) and ds["candidates"] > train:
            problems.append(
                f"datasets.{name}.candidates: {ds['candidates']} is more than the split.train = {train} "
                f"training images of each class; at most {train}"
            )
        if isinstance(train, int) and train < largest_M:
            problems.append(
                f"datasets.{name}.split.train: {train} training images per class, fewer than the largest "
                f"selection.M = {largest_M}; raise split.train or lower M"
            )
    return problems


def _unread_keys(name: str, ds: dict[str, Any]) -> list[str]:
    """Keys some loaders read, given to one that does not (``split.val_size`` for digits): it
    would change nothing, without a word."""
    # here: protolib.data (numpy, every dataset module) loads on use, not with every job's config import
    from protolib.data.base import NO_FILES, OPTIONAL_KEYS, READS

    problems = [
        f"datasets.{name}.{key}: the {ds['loader']!r} loader reads no files (its data ship with its library); remove it"
        for key in ("root", "download")
        if ds["loader"] in NO_FILES and ds.get(key)
    ]
    reads = READS.get(ds["loader"])
    if reads is None:
        return problems
    for key in OPTIONAL_KEYS:
        parent, _, leaf = key.rpartition(".")
        holder = (ds.get(parent) or {}) if parent else ds
        if leaf in holder and key not in reads:
            readers = sorted(loader for loader, keys in READS.items() if key in keys)
            problems.append(
                f"datasets.{name}.{key}: the {ds['loader']!r} loader does not read it (only "
                f"{', '.join(readers)} do); remove it"
            )
    return problems


def _model_problems(config: dict[str, Any]) -> list[str]:
    # here: the registries (numpy, every model module) load on validation, not in every job
    from protolib.models import DETECTORS, backbone_names
    from protolib.models.backbones import FEATURE_DEFAULTS, weights_path_problem, weights_problem
    from protolib.models.base import model_problems

    problems = []
    for name, model in config["models"].items():
        if model["detector"] not in DETECTORS:
            problems.append(
                f"models.{name}.detector: unknown detector {model['detector']!r}; "
                f"allowed: {', '.join(DETECTORS.names())}"
            )
        else:
            problems += model_problems(name, model)
        if model.get("backbone", FEATURE_DEFAULTS["backbone"]) not in backbone_names():
            problems.append(
                f"models.{name}.backbone: unknown backbone {model['backbone']!r}; "
                f"allowed: {', '.join(backbone_names())}"
            )
        weights = model.get("weights", FEATURE_DEFAULTS["weights"])
        missing = weights_path_problem(weights)
        if missing:
            problems.append(
                f"models.{name}.weights: {missing}; use 'imagenet' (torchvision "
                "downloads and caches the weights where the machine has the network), a path to a "
                "state_dict file, or 'none'"
            )
        elif weights not in ("none", "imagenet") and model.get("backbone") in backbone_names():
            problem = weights_problem(model)
            if problem:
                problems.append(f"models.{name}.weights: {problem}")
    return problems


def model_block_problems(name: str, model: dict[str, Any]) -> list[str]:
    """The problems of one ``models.<name>`` block on its own, as :func:`validate` finds them in a
    config: the schema's types and ranges, then its detector's settings, backbone and weights
    (``protolib rank`` checks the block its options make with this)."""
    # here: jobs never validate, so they skip importing jsonschema
    import jsonschema

    block = {"$defs": schema()["$defs"], "$ref": "#/$defs/model"}
    validator = _whole_numbers_are_ints(jsonschema.Draft202012Validator)
    errors = sorted(validator(block).iter_errors(model), key=lambda e: list(map(str, e.path)))
    if errors:
        return [".".join(["models", name, *map(str, e.path)]) + f": {e.message}" for e in errors]
    return _model_problems({"models": {name: model}})


def _pixels_problems(config: dict[str, Any]) -> list[str]:
    """Settings a study's pixels backbone does not read (its features are the prepared images as
    they are): accepted, they would be recorded in every output as if they had been used."""
    problems = []
    for name, model in config["models"].items():
        if model.get("backbone") != "pixels":
            continue
        for key, use in (
            ("image_size", "datasets.<name>.image_size sizes the prepared images"),
            ("weights", "pixels have no weights"),
            ("precision", "pixels are not computed by a network"),
        ):
            if key in model:
                problems.append(f"models.{name}.{key}: not read with backbone pixels ({use}); remove it")
    return problems


def _run_problems(config: dict[str, Any]) -> list[str]:
    problems, seen = [], {}
    for i, run in enumerate(config["runs"]):
        if run["dataset"] not in config["datasets"]:
            problems.append(
                f"runs[{i}].dataset: {run['dataset']!r} is not a key of datasets ({', '.join(config['datasets'])})"
            )
        if run["model"] not in config["models"]:
            problems.append(f"runs[{i}].model: {run['model']!r} is not a key of models ({', '.join(config['models'])})")
        pair = (run["dataset"], run["model"])
        if pair in seen:
            problems.append(
                f"runs[{i}]: dataset {pair[0]!r} with model {pair[1]!r} is already runs[{seen[pair]}]; "
                "list each pair once"
            )
        seen.setdefault(pair, i)
    return problems


def _selection_problems(config: dict[str, Any]) -> list[str]:
    # here: the selector registry (numpy) loads on validation, not in every job
    from protolib.selection import SELECTORS
    from protolib.selection.base import selection_problems

    return [
        f"selection.methods: unknown method {method!r}; allowed: {', '.join(SELECTORS.names())}"
        for method in config["selection"]["methods"]
        if method not in SELECTORS
    ] + selection_problems(config["selection"])


def manual_lists(config: dict[str, Any], dataset: str) -> dict[int, list[int]]:
    """``selection.manual.<dataset>`` with its class keys (index, digit string or class name,
    as YAML gives them) turned into class indices; unknown keys are left out (validation names them)."""
    # here: protolib.data (numpy, every dataset module) loads on use, not with every job's config import
    from protolib.data.base import CLASS_NAMES, class_index_of

    names = CLASS_NAMES.get(config["datasets"][dataset].get("loader", dataset), [])
    out: dict[int, list[int]] = {}
    for key, ids in (config["selection"].get("manual") or {}).get(dataset, {}).items():
        idx = class_index_of(names, key)
        if idx is not None:
            out[idx] = [int(i) for i in ids]
    return out


def _manual_problems(config: dict[str, Any]) -> list[str]:
    # here: protolib.data (numpy, every dataset module) loads on use, not with every job's config import
    from protolib.data.base import CLASS_NAMES, class_index_of, class_list

    manual = config["selection"].get("manual") or {}
    problems = [f"selection.manual.{d}: {d!r} is not a key of datasets" for d in manual if d not in config["datasets"]]
    if "manual" not in config["selection"]["methods"]:
        return problems
    largest_M = max(config["selection"]["M"])
    for dataset in dict.fromkeys(run["dataset"] for run in config["runs"]):
        if dataset not in config["datasets"] or config["datasets"][dataset]["loader"] not in CLASS_NAMES:
            continue  # reported as an unknown dataset or loader
        key = f"selection.manual.{dataset}"
        if dataset not in manual:
            problems.append(f"{key}: method 'manual' needs a list of ids per class for every dataset of runs")
            continue
        names = CLASS_NAMES[config["datasets"][dataset]["loader"]]
        indices: dict[int, Any] = {}
        for cls in manual[dataset]:
            idx = class_index_of(names, cls)
            if idx is None:
                problems.append(
                    f"{key}.{cls}: not a class of {dataset!r} (classes: {', '.join(names)} or 0..{len(names) - 1})"
                )
            elif idx in indices:
                problems.append(
                    f"{key}: keys {indices[idx]!r} and {cls!r} both name class {names[idx]!r} (YAML reads "
                    "3 as a number and '3' as text, and a class may be given by either); give each class "
                    "once"
                )
            else:
                indices[idx] = cls
        try:
            running = class_list(config["datasets"][dataset])
        except KeyError:
            continue  # reported under datasets.<name>.classes
        missing = [c for c in running if c not in indices]
        if missing:
            problems.append(
                f"{key}: no ids for class(es) {', '.join(names[c] for c in missing)}; "
                "method 'manual' needs a list for every class the study runs"
            )
        for cls in indices.values():
            ids = manual[dataset][cls]
            if len(ids) < largest_M:
                problems.append(
                    f"{key}.{cls}: {len(ids)} ids, fewer than the largest M = {largest_M} "
                    "(subsets take the first M ids of the list)"
                )
            elif len(set(ids[:largest_M])) < largest_M:
                problems.append(f"{key}.{cls}: the first {largest_M} ids contain duplicates ({ids[:largest_M]})")
    return problems


def transfer_name(entry: dict[str, Any]) -> str:
    """A transfer entry's name: its ``name``, else source_to_target."""
    src, tgt = entry["source"], entry["target"]
    return entry.get("name") or f"{src['dataset']}_{src['model']}_to_{tgt['dataset']}_{tgt['model']}"


def transfer_class_pairs(config: dict[str, Any], source_dataset: str, target_dataset: str) -> list[tuple[int, int]]:
    """(source class, target class): class c with class c where both datasets run class c;
    otherwise (e.g. RSNA 'normal' -> CheXpert 'normal' under other indices) by position."""
    # here: protolib.data (numpy, every dataset module) loads on use, not with every job's config import
    from protolib.data.base import class_list

    return _pair_classes(*(class_list(config["datasets"][d]) for d in (source_dataset, target_dataset)))


def _pair_classes(src: list[int], tgt: list[int]) -> list[tuple[int, int]]:
    common = [c for c in src if c in tgt]
    return [(c, c) for c in common] if common else list(zip(src, tgt))


def _unpaired_classes(config: dict[str, Any], raw: dict[str, Any], key: str) -> list[str]:
    """A transfer whose class pairing leaves a class of either side out would report a mean over
    fewer classes than the study runs, without a word."""
    src, tgt = raw["source"]["dataset"], raw["target"]["dataset"]
    if src not in config["datasets"] or tgt not in config["datasets"]:
        return []  # reported as unknown datasets
    # here: protolib.data (numpy, every dataset module) loads on use, not with every job's config import
    from protolib.data.base import class_list

    try:
        src_classes, tgt_classes = (class_list(config["datasets"][d]) for d in (src, tgt))
    except KeyError:
        return []  # reported under datasets.<name>.classes
    pairs = _pair_classes(src_classes, tgt_classes)
    left = {
        src: [c for c in src_classes if c not in {s for s, _ in pairs}],
        tgt: [c for c in tgt_classes if c not in {t for _, t in pairs}],
    }
    if not any(left.values()):
        return []
    out = "; ".join(f"{d}: {classes}" for d, classes in left.items() if classes)
    return [
        f"{key}: datasets.{src}.classes {src_classes} and datasets.{tgt}.classes {tgt_classes} pair as {pairs} "
        f"(the classes both run; by position only when they share none), which leaves out {out}: give "
        "both the same classes, or classes they do not share and as many of each"
    ]


def transfer_problems(config: dict[str, Any]) -> list[str]:
    """``transfer`` entries: known datasets, models and methods, and names used once."""
    problems, seen = [], set()
    methods_run = list(config["selection"]["methods"])
    for i, raw in enumerate(config.get("transfer") or []):
        key = f"transfer[{i}]"
        for side in ("source", "target"):
            if raw[side]["dataset"] not in config["datasets"]:
                problems.append(
                    f"{key}.{side}.dataset: {raw[side]['dataset']!r} is not a key of datasets "
                    f"({', '.join(config['datasets'])})"
                )
            if raw[side]["model"] not in config["models"]:
                problems.append(
                    f"{key}.{side}.model: {raw[side]['model']!r} is not a key of models ({', '.join(config['models'])})"
                )
        name = transfer_name(raw)
        if name in seen:
            problems.append(f"{key}.name: {name!r} is used by two transfer entries")
        seen.add(name)
        unknown = [m for m in raw.get("methods") or [] if m not in methods_run]
        if unknown:
            problems.append(
                f"{key}.methods: {', '.join(map(repr, unknown))} not in selection.methods "
                f"({', '.join(methods_run)}); transfer evaluates subsets the study selects"
            )
        problems += _unpaired_classes(config, raw, key)
    return problems


def _report_name_problems(config: dict[str, Any]) -> list[str]:
    """``report.<name>``: a registered figure or table (built-in, or a plugin's)."""
    from protolib.figures.registry import FIGURES  # jobs, which skip the check, never load it

    return [
        f"report.{name}: not a registered figure or table; registered: {', '.join(FIGURES.names())}"
        for name in config.get("report") or {}
        if name not in FIGURES
    ]


def report_problems(config: dict[str, Any]) -> list[str]:
    """``report``: every key names a registered figure or table, and every figure resolves to a
    dataset, model and classes the study runs (and passes its own check)."""
    from protolib.figures.choices import figure_choice  # as above: the check's, not the jobs'
    from protolib.figures.registry import FIGURES  # as above

    problems = []
    for figure in figures():
        try:
            if figure.chooses_run:
                figure_choice(config, figure.name)
            problems += figure.check(config) if figure.check else []
        except ConfigError as err:
            problems.append(str(err))
    methods = config["selection"]["methods"]
    for figure, settings in (config.get("report") or {}).items():
        reads = FIGURES.get(figure).reads
        for key in sorted(set(settings or {}) - (reads if reads is not None else set(settings or {}))):
            shown = ", ".join(sorted(reads)) or "no report keys"
            problems.append(f"report.{figure}.{key}: {figure} does not read it (it reads {shown}); remove it")
        unknown = [m for m in settings.get("methods") or [] if m not in methods]
        if unknown:
            problems.append(
                f"report.{figure}.methods: {', '.join(map(repr, unknown))} not in selection.methods "
                f"({', '.join(methods)})"
            )
    return problems


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key written twice in one mapping is an error (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: merged by the safe loader
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ConfigError(
                    f"{self.name}: key {key!r} is written twice (lines {seen[key]} and {line}); "
                    "YAML would silently keep only the last one: remove or merge one of them"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """A YAML config file's content; a missing, unreadable or non-text file, a pipe or device,
    a file or an alias expansion far larger than any study's, bad YAML or a duplicate key is one
    ConfigError naming the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected a YAML config file (e.g. config.yaml)")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: not a regular file (a pipe, socket or device); expected a YAML config file")
    if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: {path.stat().st_size} bytes; a study config is a few kilobytes (at most {MAX_CONFIG_BYTES})"
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8); expected a YAML config file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror or err})") from None
    if "\0" in text:
        raise ConfigError(f"{path}: not a text file (it holds NUL bytes); expected a YAML config file")
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        content = loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    finally:
        loader.dispose()
    if _values(content, {}) > MAX_CONFIG_VALUES:
        raise ConfigError(
            f"{path}: its aliases (*name) expand to more than {MAX_CONFIG_VALUES} values; a study config holds "
            "a few hundred"
        )
    return content


def load(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it (what ``protolib validate-config`` runs)."""
    return validate(read_yaml(path), str(path))


def validate_workflow(
    config: dict[str, Any], configfiles: list[str], overrides: dict[str, Any] | None
) -> dict[str, Any]:
    """The Snakefile's check, the same as :func:`load`: each config file read again for
    duplicate keys, then the merged config validated; keys set by ``--config`` are named as such."""
    for path in configfiles:
        read_yaml(path)
    source = ", ".join(map(str, configfiles))
    if overrides:
        shown = " ".join(f"{k}={v!r}" if not isinstance(v, (dict, list)) else f"{k}=..." for k, v in overrides.items())
        source = f"{source} with --config {shown}" if source else f"--config {shown}"
    return validate(config, source, overrides=set(overrides or {}))


def for_job(snakemake_config: dict[str, Any]) -> dict[str, Any]:
    """The config inside a Snakemake job: the one the Snakefile validated in place (defaults
    filled in; on a cluster each job's Snakemake parses the Snakefile, so validates, again).
    Validating it once more would cost every job ~0.5 s of start-up for nothing; the plugins
    are imported, so that their detectors and selectors are registered in the job too."""

    config = copy.deepcopy(dict(snakemake_config))
    problems = import_plugins(config)
    if problems:
        raise ConfigError("workflow config is invalid:\n  " + "\n  ".join(problems))
    return config
