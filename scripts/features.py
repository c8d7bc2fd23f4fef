"""Snakemake entry: embed every image of a dataset with a frozen backbone (the feature cache)."""
from protolib import pipeline
from protolib.config import for_job

smk = snakemake  # noqa: F821
pipeline.make_features(for_job(smk.config), smk.wildcards.dataset, smk.params.model, smk.input.data, smk.output.features, smk.output.meta)
