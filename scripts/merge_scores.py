"""Snakemake entry: join score chunks into the (K, |val|) matrix and per-sample AUROC."""
from protolib import pipeline
from protolib.config import for_job
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)
w = smk.wildcards
pipeline.merge_scores(for_job(smk.config), w.dataset, w.model, smk.input.split, list(smk.input.chunks), smk.output[0],
                      settings=smk.params.settings)
