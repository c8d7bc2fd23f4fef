"""Snakemake entry of every table and figure rule: the writer protolib.report.JOBS names for the rule."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.run_job(smk)
