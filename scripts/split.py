"""Snakemake entry: one class's seeded train/val/test split."""

from protolib.job import run

run(snakemake, "make_split")
