"""Snakemake entry of every table and figure rule: its registered writer (protolib.report.run_job)."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.run_job(smk)
