"""Snakemake entry: every evaluation file as one CSV row."""
from protolib import report

report.write_evaluation_csv(list(snakemake.input), snakemake.output[0], snakemake.config)  # noqa: F821
