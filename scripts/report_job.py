"""Snakemake entry: every table and figure rule: its registered writer (protolib.report.run_job)."""

from protolib.job import run

run(snakemake, "report")
