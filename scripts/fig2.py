"""Snakemake entry: Fig-2-style AUROC vs M per class."""
from protolib import report

smk = snakemake  # noqa: F821
report.write_fig2(smk.input[0], [tuple(r) for r in smk.params.runs], smk.output[0], smk.params.methods)
