"""Snakemake entry: one method's subsets for every M (and seed) of one class."""
from pathlib import Path

from protolib import pipeline
from protolib.config import for_job
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
w = smk.wildcards
pipeline.select_subsets(
    for_job(smk.config), w.dataset, w.model, smk.params.method,
    smk.input.split, smk.input.scores, smk.input.features, Path(smk.output[0]).parent,
    settings=smk.params.settings,
)
