"""Snakemake entry: Table 2, one run with a column per transfer experiment it is part of."""
from protolib import report
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
report.write_table2(smk.input.evaluation, smk.input.get("transfer") or None, smk.params.dataset, smk.params.model,
                    list(smk.params.entries), smk.output[0])
