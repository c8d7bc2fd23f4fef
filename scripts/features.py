"""Snakemake entry: embed every image of a dataset with a frozen backbone (the feature cache)."""

from protolib.job import run

run(snakemake, "make_features")
