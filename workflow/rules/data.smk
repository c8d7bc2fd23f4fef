# Official files -> prepared array file; -> seeded split per class; images -> frozen features.

FEATURE_MODELS = {}
for _model, _cfg in config["models"].items():
    FEATURE_MODELS.setdefault(feature_key(_cfg), _model)


rule prepare:
    input:
        device_check=device_checked(),  # the study's first job waits for the GPU pre-flight
    output:
        data_path(),
    log:
        log_file("prepare", "dataset"),
    benchmark:
        benchmark_file("prepare", "dataset")
    conda:
        "../../envs/protolib.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
    params:
        settings=lambda w: pl.provenance(config, w.dataset),
    script:
        "../../scripts/prepare.py"


rule split:
    input:
        data=data_path(),
    output:
        split_path(),
    log:
        log_file("split", "dataset", "cls"),
    benchmark:
        benchmark_file("split", "dataset", "cls")
    conda:
        "../../envs/protolib.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
    params:
        settings=lambda w: pl.provenance(config, w.dataset),
    script:
        "../../scripts/split.py"


rule features:
    input:
        data=data_path(),
        device_check=device_checked(),
    output:
        features=feature_files()[0],
        meta=feature_files()[1],
    log:
        log_file("features", "dataset", "fkey"),
    benchmark:
        benchmark_file("features", "dataset", "fkey")
    conda:
        GPU_ENV
    resources:
        **gpu_resources(),
        runtime=gpu_runtime("features"),
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
    params:
        model=lambda w: FEATURE_MODELS[w.fkey],
        settings=lambda w: pl.feature_provenance(
            config, w.dataset, FEATURE_MODELS[w.fkey]
        ),
    script:
        "../../scripts/features.py"
