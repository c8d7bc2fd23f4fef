"""Snakemake entry: Fig. 5, best and worst samples by the evolutionary ranking."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.write_fig5(smk.input.data, smk.input.scores, list(smk.input.get("subsets") or []), dict(smk.params.choice), smk.output[0])
