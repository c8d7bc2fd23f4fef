# Per-sample scores: one job scores a chunk of candidates (config scores.chunk_size), then the
# chunks are joined into the (K, |val|) matrix with the per-sample val AUROC.


rule score_chunk:
    input:
        split=lambda w: split_path(w.dataset, w.cls),
        data=detector_images,
        features=detector_features,
    output:
        f"{R}/scores/{{dataset}}/{{model}}/{{cls}}/chunk{{chunk}}.npz",
    params:
        model_config=lambda w: config["models"][w.model],
        chunk_size=config["scores"]["chunk_size"],
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        gpu=gpu_request(),
    conda:
        GPU_ENV
    script:
        "../../scripts/score_chunk.py"


rule merge_scores:
    input:
        split=lambda w: split_path(w.dataset, w.cls),
        chunks=lambda w: [
            f"{R}/scores/{w.dataset}/{w.model}/{w.cls}/chunk{c}.npz"
            for c in range(pl.n_chunks(config, w.dataset))
        ],
    output:
        f"{R}/scores/{{dataset}}/{{model}}/{{cls}}/matrix.npz",
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/merge_scores.py"
