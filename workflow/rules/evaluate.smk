# Test AUROC of the detector fitted on each subset, and on the whole training set (100 %).

for _method in METHODS:

    rule:
        name:
            f"evaluate_{_method}"
        input:
            split=split_path(),
            data=detector_images,
            features=detector_features,
            device_check=device_checked(),
            subsets=subset_files(_method),
        output:
            eval_files(_method),
        log:
            log_file(f"evaluate_{_method}", "dataset", "model", "cls"),
        benchmark:
            benchmark_file(f"evaluate_{_method}", "dataset", "model", "cls")
        conda:
            GPU_ENV
        resources:
            **gpu_resources(),
            runtime=gpu_runtime(f"evaluate_{_method}"),
            mem_mb=lambda wildcards, attempt: 8000 * attempt,
        params:
            settings=lambda w: pl.provenance(config, w.dataset, w.model),
        script:
            "../../scripts/evaluate.py"


rule evaluate_full:
    input:
        split=split_path(),
        data=detector_images,
        features=detector_features,
        device_check=device_checked(),
    output:
        eval_full_file(),
    log:
        log_file("evaluate_full", "dataset", "model", "cls"),
    benchmark:
        benchmark_file("evaluate_full", "dataset", "model", "cls")
    conda:
        GPU_ENV
    resources:
        **gpu_resources(),
        runtime=gpu_runtime("evaluate_full"),
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
    params:
        settings=lambda w: pl.provenance(config, w.dataset, w.model),
    script:
        "../../scripts/evaluate_full.py"
