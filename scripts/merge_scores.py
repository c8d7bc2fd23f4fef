"""Snakemake entry: join score chunks into the (K, |val|) matrix and per-sample AUROC."""
from protolib import pipeline
from protolib.config import for_job

smk = snakemake  # noqa: F821
w = smk.wildcards
pipeline.merge_scores(for_job(smk.config), w.dataset, w.model, smk.input.split, list(smk.input.chunks), smk.output[0])
