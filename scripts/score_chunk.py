"""Snakemake entry: single-sample scores of one chunk of candidates."""

from protolib.job import run

run(snakemake, "score_chunk")
