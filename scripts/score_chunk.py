"""Snakemake entry: single-sample scores of one chunk of candidates."""
from protolib import pipeline
from protolib.config import for_job
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
w = smk.wildcards
pipeline.score_chunk(
    for_job(smk.config), w.dataset, w.model, int(w.chunk), smk.input.split, smk.input.data or None, smk.input.features or None, smk.output[0],
    settings=smk.params.settings,
)
