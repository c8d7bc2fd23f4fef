"""Snakemake entry: join score chunks into the (K, |val|) matrix and per-sample AUROC."""

from protolib.job import run

run(snakemake, "merge_scores")
