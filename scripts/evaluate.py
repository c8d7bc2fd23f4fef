"""Snakemake entry: test AUROC of the detector fitted on each subset of one method."""

from protolib.job import run

run(snakemake, "evaluate_subsets")
