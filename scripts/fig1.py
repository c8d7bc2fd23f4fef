"""Snakemake entry: Fig. 1, one class, AUROC vs M."""
from protolib import report

smk = snakemake  # noqa: F821
report.write_fig1(smk.input[0], dict(smk.params.choice), smk.output[0])
