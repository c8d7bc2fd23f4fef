"""Snakemake entry: every transfer evaluation file (and the targets' own 100 %) as one CSV."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.write_transfer_csv(list(smk.input.results), list(smk.params.baselines), smk.output[0])
