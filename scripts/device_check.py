"""Snakemake entry: the GPU pre-flight, one job with the GPU rules' resources before any of them."""
from protolib.device import write_check
from protolib.joblog import to_rule_log

smk = snakemake  # noqa: F821
to_rule_log(smk)  # resolves the device first (as every GPU rule's job does): an unusable GPU stops here
write_check(smk.config["device"], smk.output[0], settings=smk.params.settings)
