"""Snakemake entry: test AUROC of the detector fitted on the whole training set (100 %)."""

from protolib.job import run

run(snakemake, "evaluate_full")
