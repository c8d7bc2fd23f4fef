"""Snakemake entry: the GPU pre-flight, one job with the GPU rules' resources before any of them."""

from protolib.job import run

run(snakemake, "check_device")
