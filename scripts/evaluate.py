"""Snakemake entry: test AUROC of the detector fitted on each subset of one method."""
from protolib import pipeline
from protolib.config import for_job
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
w = smk.wildcards
pipeline.evaluate_subsets(
    for_job(smk.config), w.dataset, w.model, smk.input.split, smk.input.data or None, smk.input.features or None,
    list(smk.input.subsets), list(smk.output), settings=smk.params.settings,
)
