"""Snakemake entry: every evaluation file as one CSV row."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.write_evaluation_csv(list(smk.input), smk.output[0])
