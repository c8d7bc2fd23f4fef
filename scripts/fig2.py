"""Snakemake entry: Fig-2-style AUROC vs M per class."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.write_fig2(smk.input[0], [tuple(r) for r in smk.params.runs], smk.output[0], smk.params.methods)
