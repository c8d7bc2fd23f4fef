"""Snakemake entry: Fig. 3, the images of the greedy and evolutionary subsets above test images."""
from protolib import report

smk = snakemake  # noqa: F821
subsets = dict(zip(smk.params.methods, list(smk.input.subsets), strict=True))
report.write_fig3(smk.input.data, smk.input.split, subsets, dict(smk.params.choice), smk.output[0])
