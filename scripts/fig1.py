"""Snakemake entry: Fig. 1, one class, AUROC vs M."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.write_fig1(smk.input[0], dict(smk.params.choice), smk.output[0])
