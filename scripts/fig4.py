"""Snakemake entry: Fig. 4, best and worst single samples per class."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.write_fig4(smk.input.data, list(smk.input.scores), dict(smk.params.choice), smk.output[0])
