# Per-sample scores: one job scores a chunk of candidates (config scores.chunk_size), then the
# chunks are joined into the (K, |val|) matrix with the per-sample val AUROC.


rule score_chunk:
    input:
        split=split_path(),
        data=detector_images,
        features=detector_features,
        device_check=device_checked(),
    output:
        chunk_file(),
    log:
        log_file("score_chunk", "dataset", "model", "cls", "chunk"),
    benchmark:
        benchmark_file("score_chunk", "dataset", "model", "cls", "chunk")
    conda:
        GPU_ENV
    resources:
        **gpu_resources(),
        runtime=gpu_runtime("score_chunk"),
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
    params:
        settings=lambda w: {
            **pl.provenance(config, w.dataset, w.model),
            "scores": config["scores"],
        },
    script:
        "../../scripts/score_chunk.py"


rule merge_scores:
    input:
        split=split_path(),
        chunks=chunk_files,
    output:
        scores_file(),
    log:
        log_file("merge_scores", "dataset", "model", "cls"),
    benchmark:
        benchmark_file("merge_scores", "dataset", "model", "cls")
    group:
        "selection"  # with the select_* jobs of its class (select.smk)
    conda:
        "../../envs/protolib.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
    params:
        settings=lambda w: pl.provenance(config, w.dataset, w.model),
    script:
        "../../scripts/merge_scores.py"
