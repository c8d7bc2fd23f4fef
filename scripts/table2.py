"""Snakemake entry: Table 2, one run with a column per transfer experiment it is part of."""
from protolib import report

smk = snakemake  # noqa: F821
report.write_table2(smk.input.evaluation, smk.input.get("transfer") or None, smk.params.dataset, smk.params.model,
                    list(smk.params.entries), smk.output[0])
