"""Snakemake entry: Fig. 3, the images of the greedy and evolutionary subsets above test images."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
subsets = dict(zip(smk.params.methods, list(smk.input.subsets), strict=True))
report.write_fig3(smk.input.data, smk.input.split, subsets, dict(smk.params.choice), smk.output[0])
