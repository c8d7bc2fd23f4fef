"""Snakemake entry: one class's seeded train/val/test split."""
from protolib import pipeline
from protolib.config import for_job

w = snakemake.wildcards  # noqa: F821
pipeline.make_split(for_job(snakemake.config), w.dataset, int(w.cls), snakemake.input.data, snakemake.output[0])  # noqa: F821
