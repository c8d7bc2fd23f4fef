# Test AUROC of the detector fitted on each subset, and on the whole training set (100 %).

for _method in METHODS:

    rule:
        name:
            f"evaluate_{_method}"
        input:
            split=lambda w: split_path(w.dataset, w.cls),
            data=detector_images,
            features=detector_features,
            subsets=[
                f"{R}/subsets/{{dataset}}/{{model}}/{{cls}}/{_method}/{pl.subset_name(M, s)}.json"
                for M in M_VALUES
                for s in pl.seeds(config, _method)
            ],
        output:
            [
                f"{R}/eval/{{dataset}}/{{model}}/{{cls}}/{_method}/{pl.subset_name(M, s)}.json"
                for M in M_VALUES
                for s in pl.seeds(config, _method)
            ],
        params:
            model_config=lambda w: config["models"][w.model],
        resources:
            mem_mb=lambda wildcards, attempt: 8000 * attempt,
            gpu=gpu_request(),
        conda:
            GPU_ENV
        script:
            "../../scripts/evaluate.py"


rule evaluate_full:
    input:
        split=lambda w: split_path(w.dataset, w.cls),
        data=detector_images,
        features=detector_features,
    output:
        f"{R}/eval/{{dataset}}/{{model}}/{{cls}}/{pl.FULL}.json",
    params:
        model_config=lambda w: config["models"][w.model],
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        gpu=gpu_request(),
    conda:
        GPU_ENV
    script:
        "../../scripts/evaluate_full.py"
