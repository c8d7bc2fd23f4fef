"""Snakemake entry: embed every image of a dataset with a frozen backbone (the feature cache)."""
from protolib import pipeline
from protolib.config import for_job
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
pipeline.make_features(for_job(smk.config), smk.wildcards.dataset, smk.params.model, smk.input.data, smk.output.features, smk.output.meta,
                       settings=smk.params.settings)
