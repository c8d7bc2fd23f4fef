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


def transfer_subsets(entry, source_cls):
    """The source subsets an entry evaluates for one class, in output order."""
    src = entry["source"]
    return [f for method in entry["methods"] for f in subset_files(src["dataset"], src["model"], source_cls, method)]


def transfer_inputs(entry):
    """Input function of one entry's rule: both splits, the target model's inputs on each dataset
    (feature caches or prepared images) and the source subsets."""

    def inputs(w):
        src, tgt = entry["source"], entry["target"]
        source_cls = int(w.cls)
        target_cls = dict(entry["pairs"])[source_cls]
        out = {
            "source_split": split_path(src["dataset"], source_cls),
            "target_split": split_path(tgt["dataset"], target_cls),
            "subsets": transfer_subsets(entry, source_cls),
        }
        if detector_uses_features(config["models"][tgt["model"]]):
            out["source_features"] = features_path(src["dataset"], tgt["model"])
            out["target_features"] = features_path(tgt["dataset"], tgt["model"])
        else:
            out["source_data"] = data_path(src["dataset"])
            out["target_data"] = data_path(tgt["dataset"])
        return out

    return inputs


def transfer_result_files(entry):
    files = []
    for source_cls, _ in entry["pairs"]:
        files.append(f"{R}/transfer/{entry['name']}/{source_cls}/{pl.FULL}.json")
        for method in entry["methods"]:
            files += [
                f"{R}/transfer/{entry['name']}/{source_cls}/{method}/{pl.subset_name(M, s)}.json"
                for M in M_VALUES
                for s in pl.seeds(config, method)
            ]
    return files


def transfer_baselines(entry):
    """The target trained on its own whole training set, per class pair (the 100 % line)."""
    tgt = entry["target"]
    return [
        {
            "name": entry["name"],
            "source": entry["source"],
            "class": source_cls,
            "path": f"{R}/eval/{tgt['dataset']}/{tgt['model']}/{target_cls}/{pl.FULL}.json",
        }
        for source_cls, target_cls in entry["pairs"]
    ]


TRANSFER_BASELINES = [b for e in TRANSFER.values() for b in transfer_baselines(e)]


for _entry in TRANSFER.values():

    rule:
        name:
            f"transfer_{_entry['name']}"
        input:
            unpack(transfer_inputs(_entry)),
        output:
            full=f"{R}/transfer/{_entry['name']}/{{cls}}/{pl.FULL}.json",
            subsets=[
                f"{R}/transfer/{_entry['name']}/{{cls}}/{method}/{pl.subset_name(M, s)}.json"
                for method in _entry["methods"]
                for M in M_VALUES
                for s in pl.seeds(config, method)
            ],
        params:
            name=_entry["name"],
        resources:
            mem_mb=lambda wildcards, attempt: 8000 * attempt,
            gpu=gpu_request(),
        conda:
            GPU_ENV
        script:
            "../../scripts/transfer_evaluate.py"


rule transfer:
    input:
        results=[f for e in TRANSFER.values() for f in transfer_result_files(e)],
        baselines=[b["path"] for b in TRANSFER_BASELINES],
    output:
        f"{R}/transfer/evaluation.csv",
    params:
        baselines=TRANSFER_BASELINES,
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/transfer_collect.py"
