"""Snakemake entry: Fig. 6, transfer (a placeholder when no transfer experiment is configured)."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.write_fig6(smk.input[0] if len(smk.input) else None, list(smk.params.entries), smk.output[0])
