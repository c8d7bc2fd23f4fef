"""Snakemake entry: the Table-1 summary (CSV, Markdown, LaTeX)."""
from protolib import report

report.write_table1(snakemake.input[0], snakemake.output[0])  # noqa: F821
