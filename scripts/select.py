"""Snakemake entry: one method's subsets for every M (and seed) of one class."""

from protolib.job import run

run(snakemake, "select_subsets")
