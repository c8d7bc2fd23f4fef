"""Every intermediate a job writes carries a digest of its content and of the inputs it was made
from; every reader recomputes the digest and refuses a file that no longer matches.

A NaN typed into a feature cache, a cache cut to fewer columns, a subset's ids edited, a test
AUROC changed by hand: each would otherwise flow into the tables without a word. The record is
``integrity = {"digest": ..., "made_from": {input name: its digest}}``: a top-level key of a
JSON file, an array of an ``.npz`` (JSON text), and for a ``.npy`` feature cache or a ``.csv``
table (which have no room for it) the digest of the array or text sits in a ``.json``
description beside it, itself a checked file.

Readers name the file and the command that rebuilds it; the rule is the reader's to name (it
knows what it reads), since a corrupted file may not even parse.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from protolib import io
from protolib.errors import InputMismatchError

FIELD = "integrity"
#: the validated config of the study a Snakemake job belongs to (:func:`use_study`); None outside a job
_STUDY: dict[str, Any] | None = None
#: what a file's recorded ``config`` holds -> the study config's key it comes from
RECORDED_SECTIONS = {"dataset": "datasets", "model": "models", "selection": "selection"}


class EditedFileError(InputMismatchError):
    """A file whose content no longer matches the digest it was written with."""


def rebuild_hint(rule: str | None) -> str:
    """How a user rebuilds a refused file (Snakemake reruns what depends on it, too)."""
    if rule:
        return (
            f"rebuild it with `snakemake --forcerun {rule}` (with the run's usual --configfile/--profile), "
            "or delete it and run snakemake again"
        )
    return "delete it and run snakemake again (it is rebuilt)"


def refuse(
    path: str | Path, problem: str, rule: str | None, kind: type[InputMismatchError] = InputMismatchError
) -> InputMismatchError:
    return kind(f"{path}: {problem}; {rebuild_hint(rule)}")


# ----------------------------------------------------------------------------- digests
def _hasher() -> Any:
    return hashlib.blake2b(digest_size=16)


def _canonical(obj: Any) -> bytes:
    """JSON text that is the same before writing and after reading back (keys as strings, sorted)."""
    plain = json.loads(json.dumps(obj, default=io._json_default))
    return json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()


def array_digest(array: np.ndarray, h: Any = None) -> str:
    """Digest of an array's dtype, shape and bytes (a memory map is read through, not copied)."""
    h = h or _hasher()
    array = np.asarray(array)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    if array.flags.c_contiguous:
        h.update(memoryview(array.reshape(-1).view(np.uint8)) if array.size else b"")
    else:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def json_digest(obj: dict[str, Any]) -> str:
    """Digest of a JSON record as written, its own digest left out (its ``made_from`` kept in)."""
    body = dict(obj)
    record = dict(body.get(FIELD) or {})
    record.pop("digest", None)
    body[FIELD] = record
    h = _hasher()
    h.update(_canonical(body))
    return h.hexdigest()


def text_digest(text: str) -> str:
    h = _hasher()
    h.update(text.encode("utf-8"))
    return h.hexdigest()


def npz_digest(arrays: dict[str, Any]) -> str:
    """Digest of an ``.npz``'s arrays (``meta`` as a dict, the record without its own digest)."""
    h = _hasher()
    for key in sorted(arrays):
        value = arrays[key]
        h.update(key.encode() + b"\0")
        if key == FIELD:
            record = dict(_record_of(value))
            record.pop("digest", None)
            h.update(_canonical(record))
        elif key == "meta" and isinstance(value, dict):
            h.update(_canonical(value))
        else:
            array_digest(np.asarray(value), h)
    return h.hexdigest()


def _record_of(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        record = json.loads(str(np.asarray(value)))
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


# ----------------------------------------------------------------------------- writers
def write_json(path: str | Path, obj: dict[str, Any], made_from: dict[str, str] | None = None) -> str:
    """Write a JSON intermediate with its integrity record; returns its digest."""
    body = io.with_run({k: v for k, v in obj.items() if k != FIELD})  # digested as written
    body[FIELD] = {"made_from": dict(made_from or {})}
    digest = json_digest(body)
    body[FIELD]["digest"] = digest
    io.write_json(path, body)
    return digest


def write_npz(path: str | Path, made_from: dict[str, str] | None = None, **arrays: Any) -> str:
    """Write an ``.npz`` intermediate (:func:`protolib.io.write_npz`) with its integrity record."""
    arrays = {k: (io.with_run(v) if k == "meta" else np.asarray(v)) for k, v in arrays.items() if k != FIELD}
    record: dict[str, Any] = {"made_from": dict(made_from or {})}
    arrays[FIELD] = record
    record["digest"] = npz_digest(arrays)
    arrays[FIELD] = np.array(json.dumps(record, sort_keys=True))
    io.write_npz(path, **arrays)
    return record["digest"]


def write_table(
    path: str | Path, text: str, made_from: dict[str, Any] | None = None, config: dict[str, Any] | None = None
) -> str:
    """Write a CSV table (``text``) and its ``.json`` description: the digest of the text, its
    row count, the settings (``config``) and the files it was made from. Returns the text's digest."""
    digest = text_digest(text)
    io.write_text(path, text)
    description = {
        "rows": max(text.count("\n") - 1, 0),
        "text_digest": digest,
        **({"config": config} if config else {}),
    }
    write_json(description_path(path), description, made_from)
    return digest


def features_description(features: np.ndarray) -> dict[str, Any]:
    """What a feature cache's ``.json`` says of its array: shape, dtype and digest."""
    return {"shape": list(features.shape), "dtype": features.dtype.str, "array_digest": array_digest(features)}


# ----------------------------------------------------------------------------- the study's settings
def use_study(config: dict[str, Any] | None) -> None:
    """Readers from now on refuse a file recorded under other settings than ``config``'s (set
    by :func:`protolib.job.run`: a file copied in from another study, with its digest intact,
    would otherwise be used as if this study had made it)."""
    global _STUDY
    _STUDY = config


def _differences(recorded: Any, current: Any, key: str) -> list[str]:
    """``key: recorded in the file, current in the config`` for each leaf that differs."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        return [
            d
            for k in sorted(set(recorded) | set(current))
            for d in _differences(recorded.get(k), current.get(k), f"{key}.{k}")
        ]
    if _canonical([recorded]) == _canonical([current]):
        return []
    if current is None or recorded is None:  # a whole block on one side only: named, not printed
        return [f"{key}: {'in the file, not in the config' if current is None else 'in the config, not in the file'}"]
    return [f"{key}: {json.dumps(recorded, default=str)} in the file, {json.dumps(current, default=str)} in the config"]


def study_differences(recorded: dict[str, Any], study: dict[str, Any]) -> list[str]:
    """Where a file's recorded ``config`` (a job's provenance: seed, its dataset's, model's and
    selection method's blocks, the score settings; a transfer's per side) differs from ``study``."""
    sides = [recorded[s] for s in ("source", "target") if isinstance(recorded.get(s), dict)] or [recorded]
    found: list[str] = []
    for side in sides:
        if "seed" in side:
            found += _differences(side["seed"], study.get("seed", 0), "seed")
        if "scores" in side:
            found += _differences(side["scores"], study.get("scores"), "scores")
        for part, section in RECORDED_SECTIONS.items():
            for name, block in (side.get(part) or {}).items():
                default = {} if part == "selection" else None  # a method without settings: {} (selection_provenance)
                found += _differences(block, (study.get(section) or {}).get(name, default), f"{section}.{name}")
    return found


def union_of(configs: list[Any]) -> dict[str, Any]:
    """One recorded ``config`` for a file made from many (a table of evaluation files): the seed
    and every dataset's and model's block they record, a transfer's sides included."""
    out: dict[str, Any] = {}
    for recorded in configs:
        if not isinstance(recorded, dict):
            continue
        for side in [recorded[s] for s in ("source", "target") if isinstance(recorded.get(s), dict)] or [recorded]:
            if "seed" in side:
                out["seed"] = side["seed"]
            for part in ("dataset", "model"):
                out.setdefault(part, {}).update(side.get(part) or {})
    return out


def _check_study(path: str | Path, obj: dict[str, Any], rule: str | None) -> None:
    recorded = obj.get("config")
    if recorded is None and isinstance(obj.get("meta"), dict):
        recorded = obj["meta"].get("config")
    if _STUDY is None or not isinstance(recorded, dict):
        return
    found = study_differences(recorded, _STUDY)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise refuse(path, f"was made under other settings than this study's: {found[0]}{more}", rule)


# ----------------------------------------------------------------------------- readers
def read_json(path: str | Path, rule: str | None) -> dict[str, Any]:
    """A JSON intermediate, refused unless its digest matches its content."""
    try:
        obj = io.read_json(path)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise refuse(path, f"unreadable ({err})", rule) from None
    if not isinstance(obj, dict):
        raise refuse(path, f"holds a {type(obj).__name__}, not the record a job writes", rule)
    record = obj.get(FIELD)
    if not isinstance(record, dict) or "digest" not in record:
        raise refuse(path, "carries no digest (written by hand or by an older protolib)", rule)
    if json_digest(obj) != record["digest"]:
        raise refuse(
            path,
            "its content does not match its digest (edited or corrupted since it was written)",
            rule,
            EditedFileError,
        )
    _check_study(path, obj, rule)
    return obj


def read_npz(path: str | Path, rule: str | None) -> dict[str, Any]:
    """An ``.npz`` intermediate (``meta`` as a dict), refused unless its digest matches."""
    try:
        data = io.read_npz(path)
    except (OSError, ValueError) as err:
        raise refuse(path, f"unreadable ({err})", rule) from None
    if FIELD not in data or "digest" not in _record_of(data[FIELD]):
        raise refuse(path, "carries no digest (written by hand or by an older protolib)", rule)
    record = _record_of(data[FIELD])
    if npz_digest(data) != record["digest"]:
        raise refuse(
            path,
            "its arrays do not match their digest (edited or corrupted since it was written)",
            rule,
            EditedFileError,
        )
    data[FIELD] = record
    _check_study(path, data, rule)
    return data


def description_path(path: str | Path) -> Path:
    """The ``.json`` beside a feature cache or a table (the job writes both)."""
    return Path(path).with_suffix(".json")


def read_description(path: str | Path, rule: str | None) -> tuple[Path, dict[str, Any]]:
    """The checked ``.json`` description beside a feature cache or table (and its path)."""
    meta_path = description_path(path)
    if not meta_path.is_file() and Path(path).is_file():
        raise refuse(
            path, f"has no description {meta_path.name} beside it (written by hand or by an older protolib)", rule
        )
    return meta_path, read_json(meta_path, rule)


def read_table(path: str | Path, rule: str | None) -> str:
    """A CSV table's text, checked against the digest in its ``.json`` description (a number
    typed into the table would otherwise reach every table and figure made from it)."""
    meta_path, meta = read_description(path, rule)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise refuse(path, "missing beside its description " + str(meta_path), rule) from None
    except (OSError, UnicodeDecodeError) as err:
        raise refuse(path, f"unreadable table ({err})", rule) from None
    if text_digest(text) != meta.get("text_digest"):
        raise refuse(
            path,
            f"its content does not match the digest recorded in {meta_path} (edited or corrupted since it was written)",
            rule,
            EditedFileError,
        )
    return text


def read_features(path: str | Path, rule: str = "features") -> np.ndarray:
    """A feature cache (memory-mapped), checked against its ``.json``: the shape and dtype it
    records, the digest of the array, finite values (checked when written, kept by the digest)."""
    meta_path, meta = read_description(path, rule)
    try:
        features = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise refuse(path, "missing beside its description " + str(meta_path), rule) from None
    except (OSError, ValueError) as err:
        raise refuse(path, f"unreadable feature cache ({err}; truncated?)", rule) from None
    expected = (tuple(meta.get("shape") or ()), meta.get("dtype"))
    if (features.shape, features.dtype.str) != expected:
        raise refuse(
            path,
            f"holds an array of shape {features.shape} ({features.dtype.str}), but {meta_path} "
            f"records {expected[0]} ({expected[1]})",
            rule,
        )
    if array_digest(features) != meta.get("array_digest"):
        raise refuse(path, f"its values do not match the digest recorded in {meta_path} (edited or corrupted)", rule)
    return features


def stored_digest(path: str | Path) -> str:
    """The digest a checked file records of itself (a feature cache's: of its array), read
    without checking it: what a job records of the inputs it read (and checked) itself."""
    path = Path(path)
    if path.suffix == ".npy":
        return str(io.read_json(description_path(path)).get("array_digest", ""))
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return str(_record_of(data[FIELD]).get("digest", "")) if FIELD in data.files else ""
    record = io.read_json(path).get(FIELD) or {}
    return str(record.get("digest", ""))


def made_from(**paths: Any) -> dict[str, Any]:
    """``made_from`` of a job's output: each named input's digest (a list of paths gives a list;
    inputs a job was not given are left out)."""
    out: dict[str, Any] = {}
    for name, value in paths.items():
        if not value:
            continue
        out[name] = [stored_digest(p) for p in value] if isinstance(value, (list, tuple)) else stored_digest(value)
    return out


def check_made_from(
    path: str | Path, record: dict[str, Any], name: str, input_path: str | Path, rule: str | None
) -> None:
    """Refuse ``path`` if its record names another ``name`` input than ``input_path`` now holds
    (the input was rebuilt or replaced after it, and it was not)."""
    recorded = (record.get(FIELD) or {}).get("made_from", {}).get(name)
    if recorded is not None and recorded != stored_digest(input_path):
        raise refuse(
            path,
            f"was made from another {name} file than {input_path} (that one was rebuilt or replaced after it)",
            rule,
        )
