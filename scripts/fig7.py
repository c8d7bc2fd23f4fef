"""Snakemake entry: Fig. 7, the long tail of training-feature distances to the class centre."""
from protolib import report

smk = snakemake  # noqa: F821
report.write_fig7(smk.input.data, smk.input.split, smk.input.features, dict(smk.params.choice), smk.output[0])
