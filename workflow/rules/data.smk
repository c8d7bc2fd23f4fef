# Official files -> prepared array file; -> seeded split per class; images -> frozen features.

FEATURE_MODELS = {}
for _model, _cfg in config["models"].items():
    FEATURE_MODELS.setdefault(feature_key(_cfg), _model)


rule prepare:
    output:
        f"{R}/data/{{dataset}}.npz",
    params:
        dataset_config=lambda w: config["datasets"][w.dataset],
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/prepare.py"


rule split:
    input:
        data=lambda w: data_path(w.dataset),
    output:
        f"{R}/splits/{{dataset}}/{{cls}}.json",
    params:
        dataset_config=lambda w: config["datasets"][w.dataset],
        seed=config["seed"],
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/split.py"


rule features:
    input:
        data=lambda w: data_path(w.dataset),
    output:
        features=f"{R}/features/{{dataset}}/{{fkey}}.npy",
        meta=f"{R}/features/{{dataset}}/{{fkey}}.json",
    params:
        model=lambda w: FEATURE_MODELS[w.fkey],
        model_config=lambda w: config["models"][FEATURE_MODELS[w.fkey]],
        dataset_config=lambda w: config["datasets"][w.dataset],
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        gpu=gpu_request(),
    conda:
        GPU_ENV
    script:
        "../../scripts/features.py"
