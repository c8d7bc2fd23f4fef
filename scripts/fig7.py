"""Snakemake entry: Fig. 7, the long tail of training-feature distances to the class centre."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.write_fig7(smk.input.data, smk.input.split, smk.input.features, dict(smk.params.choice), smk.output[0])
