# Path helpers shared by the rules (no logic beyond naming files).

# The conda environment of the GPU rules (features, score_chunk, evaluate_*, transfer): the CPU
# rules' pinned environment, or the same with pytorch's CUDA build forced (`conda_cuda: true`).
GPU_ENV = "../../envs/protolib-cuda.yaml" if config.get("conda_cuda", False) else "../../envs/protolib.yaml"


def gpu_request():
    """GPUs a GPU rule asks for (`resources: gpu`): none with `device: cpu`, so the same SLURM
    profile runs on CPU-only clusters (which reject `--gpus`), else one (`cuda`, `auto`)."""
    return 0 if config["device"] == "cpu" else 1


def data_path(dataset):
    return f"{R}/data/{dataset}.npz"


def split_path(dataset, cls):
    return f"{R}/splits/{dataset}/{cls}.json"


def features_path(dataset, model):
    return f"{R}/features/{dataset}/{feature_key(config['models'][model])}.npy"


def detector_features(wildcards):
    """The feature cache, for detectors that work on frozen features; nothing otherwise."""
    if detector_uses_features(config["models"][wildcards.model]):
        return features_path(wildcards.dataset, wildcards.model)
    return []


def detector_images(wildcards):
    """The prepared images, for detectors that work on images; nothing otherwise."""
    if detector_uses_features(config["models"][wildcards.model]):
        return []
    return data_path(wildcards.dataset)


def subset_files(dataset, model, cls, method):
    return [
        f"{R}/subsets/{dataset}/{model}/{cls}/{method}/{pl.subset_name(M, s)}.json"
        for M in M_VALUES
        for s in pl.seeds(config, method)
    ]


def eval_files(dataset, model, cls, method):
    return [
        f"{R}/eval/{dataset}/{model}/{cls}/{method}/{pl.subset_name(M, s)}.json"
        for M in M_VALUES
        for s in pl.seeds(config, method)
    ]


def all_eval_files(dataset, model):
    files = []
    for cls in CLASSES[dataset]:
        files.append(f"{R}/eval/{dataset}/{model}/{cls}/{pl.FULL}.json")
        for method in METHODS:
            files += eval_files(dataset, model, cls, method)
    return files


wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    model=r"[A-Za-z0-9_]+",
    cls=r"\d+",
    chunk=r"\d+",
    fkey=r"[A-Za-z0-9_.\-]+",
