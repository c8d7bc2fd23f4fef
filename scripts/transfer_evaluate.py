"""Snakemake entry: one transfer entry, one class: test AUROC on the target of every source subset
and of the source's whole training set."""
from protolib import pipeline
from protolib.config import for_job
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
i = smk.input
pipeline.evaluate_transfer(
    for_job(smk.config), smk.params.name, i.source_split, i.target_split,
    i.get("source_data"), i.get("source_features"), i.get("target_data"), i.get("target_features"),
    list(i.subsets), list(smk.output.subsets), full_out=smk.output.full, settings=smk.params.settings,
)
