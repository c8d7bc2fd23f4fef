"""Snakemake entry: one class's seeded train/val/test split."""
from protolib import pipeline
from protolib.config import for_job
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
w = smk.wildcards
pipeline.make_split(for_job(smk.config), w.dataset, int(w.cls), smk.input.data, smk.output[0],
                   settings=smk.params.settings)
