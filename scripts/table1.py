"""Snakemake entry: the Table-1 summary (CSV, Markdown, LaTeX)."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.write_table1(smk.input[0], smk.output[0])
