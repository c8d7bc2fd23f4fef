"""Snakemake entry: one transfer entry, one class: test AUROC on the target of every source subset
and of the source's whole training set."""

from protolib.job import run

run(snakemake, "evaluate_transfer")
