"""Snakemake entry: one method's subsets for every M (and seed) of one class."""
from pathlib import Path

from protolib.joblog import to_rule_log, use_rule_threads

smk = snakemake  # noqa: F821
use_rule_threads(smk)  # before numba is imported
to_rule_log(smk)

from protolib import pipeline  # noqa: E402
from protolib.config import for_job  # noqa: E402

w = smk.wildcards
pipeline.select_subsets(
    for_job(smk.config), w.dataset, w.model, smk.params.method,
    smk.input.split, smk.input.scores, smk.input.features, Path(smk.output[0]).parent,
    settings=smk.params.settings,
)
