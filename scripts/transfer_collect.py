"""Snakemake entry: every transfer evaluation file (and the targets' own 100 %) as one CSV."""
from protolib import report

smk = snakemake  # noqa: F821
report.write_transfer_csv(list(smk.input.results), list(smk.params.baselines), smk.output[0])
