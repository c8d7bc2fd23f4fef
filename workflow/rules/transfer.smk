# Transfer experiments (config `transfer`): subsets found with one (dataset, model), the source,
# evaluated with another, the target -- model transfer on one dataset (RD -> FAE on RSNA) and
# dataset transfer (RSNA -> CheXpert). The target's detector is fitted on the selected source
# images and tested on the target's test split; each class pair is also evaluated with the
# source's whole training set (full.json). Class c of the source pairs with class c of the target
# (by position when the datasets share no class index). One rule per entry (transfer_<name>),
# one job per class: it loads the inputs once and evaluates every subset. Target by name:
#   snakemake --cores 2 transfer      -> results/transfer/evaluation.csv
# (results/transfer/<name>/<cls>/<method>/M<M>_seed<s>.json, <cls> = the source class)

TRANSFER = {_e["name"]: _e for _e in pl.transfer_entries(config)}


TRANSFER_BASELINES = [b for e in TRANSFER.values() for b in transfer_baselines(e)]


for _entry in TRANSFER.values():

    rule:
        name:
            f"transfer_{_entry['name']}"
        input:
            unpack(transfer_inputs(_entry)),
        output:
            full=transfer_full_file(_entry["name"]),
            subsets=[
                f
                for method in _entry["methods"]
                for f in transfer_files(_entry["name"], method)
            ],
        log:
            log_file(f"transfer_{_entry['name']}", "cls"),
        benchmark:
            benchmark_file(f"transfer_{_entry['name']}", "cls")
        conda:
            GPU_ENV
        resources:
            **gpu_resources(),
            runtime=gpu_runtime(f"transfer_{_entry['name']}"),
            mem_mb=lambda wildcards, attempt: 8000 * attempt,
        params:
            name=_entry["name"],
            # the rerun trigger: a changed source or target setting (the target's k, say) reruns
            # these jobs, which otherwise see no changed input when the two share a feature cache
            settings=pl.transfer_provenance(config, _entry),
        script:
            "../../scripts/transfer_evaluate.py"


rule transfer:
    input:
        results=[f for e in TRANSFER.values() for f in transfer_result_files(e)],
        baselines=[b["path"] for b in TRANSFER_BASELINES],
    output:
        with_description(TRANSFER_CSV),
    log:
        log_file("transfer"),
    benchmark:
        benchmark_file("transfer")
    conda:
        "../../envs/protolib.yaml"
    params:
        baselines=TRANSFER_BASELINES,
    script:
        "../../scripts/report_job.py"
