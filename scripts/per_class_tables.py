"""Snakemake entry: one per-class table per (dataset, model) run."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.write_per_class_tables(smk.input[0], [tuple(r) for r in smk.params.runs], smk.output[0])
