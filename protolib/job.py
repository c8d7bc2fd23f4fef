"""The one adapter from a Snakemake job to the code it runs: every script is ``run(snakemake, stage)``.

A stage (a :mod:`protolib.pipeline` function) is called with keyword arguments named here from
the job's wildcards, input, output and params, plus the job's config and ``settings`` (its
provenance); ``"report"`` sends a table or figure rule to its registered writer
(:func:`protolib.report.run_job`). The job's output goes to its rule's log first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from protolib import integrity
from protolib.config import for_job
from protolib.joblog import to_rule_log, use_rule_threads

Job = Any  # a script's ``snakemake`` object


def _scored(j: Job) -> dict[str, Any]:
    """What every job on one (dataset, model, class) reads: its split, images and features."""
    return {
        "dataset": j.wildcards.dataset,
        "model": j.wildcards.model,
        "split_path": j.input.split,
        "data_path": j.input.data or None,
        "features_path": j.input.features or None,
    }


#: Each stage's keyword arguments from its job (besides ``config`` and ``settings``).
KWARGS: dict[str, Callable[[Job], dict[str, Any]]] = {
    "check_device": lambda j: {"out": j.output[0]},
    "prepare_dataset": lambda j: {"dataset": j.wildcards.dataset, "out": j.output[0]},
    "make_split": lambda j: {
        "dataset": j.wildcards.dataset,
        "cls": int(j.wildcards.cls),
        "data_path": j.input.data,
        "out": j.output[0],
    },
    "make_features": lambda j: {
        "dataset": j.wildcards.dataset,
        "model": j.params.model,
        "data_path": j.input.data,
        "out": j.output.features,
        "meta_out": j.output.meta,
    },
    "score_chunk": lambda j: {**_scored(j), "chunk": int(j.wildcards.chunk), "out": j.output[0]},
    "merge_scores": lambda j: {
        "dataset": j.wildcards.dataset,
        "model": j.wildcards.model,
        "split_path": j.input.split,
        "chunk_paths": list(j.input.chunks),
        "out": j.output[0],
    },
    "select_subsets": lambda j: {
        "dataset": j.wildcards.dataset,
        "model": j.wildcards.model,
        "method": j.params.method,
        "split_path": j.input.split,
        "scores_path": j.input.scores,
        "features_path": j.input.features,
        "out_dir": Path(j.output[0]).parent,
    },
    "evaluate_subsets": lambda j: {**_scored(j), "subset_paths": list(j.input.subsets), "out_paths": list(j.output)},
    "evaluate_full": lambda j: {**_scored(j), "out": j.output[0]},
    "evaluate_transfer": lambda j: {
        "name": j.params.name,
        "source_split_path": j.input.source_split,
        "target_split_path": j.input.target_split,
        "source_data": j.input.get("source_data"),
        "source_features": j.input.get("source_features"),
        "target_data": j.input.get("target_data"),
        "target_features": j.input.get("target_features"),
        "subset_paths": list(j.input.subsets),
        "out_paths": list(j.output.subsets),
        "full_out": j.output.full,
    },
}

#: Stages whose numba loops run on the job's ``threads`` (set before numba is imported).
THREADED = frozenset({"select_subsets"})


def run(smk: Job, stage: str) -> None:
    """Run ``stage`` (a key of :data:`KWARGS`, or ``"report"``) for the Snakemake job ``smk``."""
    if stage != "report" and stage not in KWARGS:
        raise ValueError(f"unknown stage {stage!r}; expected 'report' or one of {sorted(KWARGS)}")
    if stage in THREADED:
        use_rule_threads(smk)
    to_rule_log(smk)
    config = for_job(smk.config)
    integrity.use_study(config)  # every input is read against this study's settings
    if stage == "report":
        from protolib import report  # here: keeps matplotlib and pandas out of the stage jobs' start-up

        report.run_job(smk)
        return
    from protolib import pipeline  # here: numba reads NUMBA_NUM_THREADS (set above) when first imported

    getattr(pipeline, stage)(config, **KWARGS[stage](smk), settings=smk.params.settings)
