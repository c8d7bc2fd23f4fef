"""Snakemake entry: read a dataset's official files once into the prepared array file."""
from protolib import pipeline
from protolib.config import for_job

pipeline.prepare_dataset(for_job(snakemake.config), snakemake.wildcards.dataset, snakemake.output[0])  # noqa: F821
