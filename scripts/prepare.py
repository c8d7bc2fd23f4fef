"""Snakemake entry: read a dataset's official files once into the prepared array file."""

from protolib.job import run

run(snakemake, "prepare_dataset")
