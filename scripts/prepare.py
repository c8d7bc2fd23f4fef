"""Snakemake entry: read a dataset's official files once into the prepared array file."""
from protolib import pipeline
from protolib.config import for_job
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
pipeline.prepare_dataset(for_job(smk.config), smk.wildcards.dataset, smk.output[0], settings=smk.params.settings)
