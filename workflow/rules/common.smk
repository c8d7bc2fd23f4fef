# The results tree: every path a rule reads or writes is named through here, by the one layout
# (protolib.layout.Layout, also used by the ablation and the report), and nowhere else.
# Path helpers take wildcard values; called without them they return the rule's output pattern
# (e.g. subset_files("greedy") -> ".../{dataset}/{model}/{cls}/greedy/M1_seed0.json", ...).
# The (M, seed) list of a method's files is subset_runs(method), for subsets, evaluations and
# transfer alike.
# No rules in this file (snakemake --lint).
#
# Rerun triggers: a job rule's `params.settings` is the part of the config its output records
# (protolib.pipeline.provenance; the job writes exactly what it is given). Snakemake reruns a job
# whose params changed, so a changed setting reruns the jobs that record it and nothing else
# (tests/test_pipeline.py: test_a_changed_setting_reruns_what_depends_on_it_and_nothing_else).

# The conda environment of the GPU rules (features, score_chunk, evaluate_*, transfer): the CPU
# rules' pinned environment, or the same with pytorch's CUDA build forced (`conda_cuda: true`).
GPU_ENV = (
    "../../envs/protolib-cuda.yaml"
    if config.get("conda_cuda", False)
    else "../../envs/protolib.yaml"
)


def gpu_resources():
    """The GPU rules' GPU request (`resources: **gpu_resources()`): `gpu` 0 with `device: cpu`,
    so the same SLURM profile runs on CPU-only clusters (which reject `--gpus`), else 1 (`cuda`,
    `auto`), and the config's `gpu_model` with it. Only here: the slurm plugin (2.8) turns a
    `gpu_model` resource into `--gpus=<model>:<gpu or 1>` for every job that has one, so in a
    profile's default-resources it would give every CPU job a GPU.
    """
    if config["device"] == "cpu":
        return {"gpu": 0}
    if config.get("gpu_model"):
        return {"gpu": 1, "gpu_model": config["gpu_model"]}
    return {"gpu": 1}


def gpu_runtime(rule):
    """A GPU rule's runtime (`resources: runtime=gpu_runtime("<rule>")`): the minutes the
    config's `runtime_minutes` gives the rule (protolib.slurm.runtime_minutes), times `attempt`,
    so a job killed for time is resubmitted with twice, then three times as long. The SLURM
    profile's default runtime is for the CPU rules only."""
    minutes = slurm_check.runtime_minutes(config, rule)
    return lambda wildcards, attempt: minutes * attempt


def device_checked():
    """Input of every GPU rule, and of `prepare`: the GPU pre-flight's record (rule
    `device_check`), so no GPU job starts before one job on a GPU node has shown the GPU
    usable, and a study whose GPU cannot be used ends with that one failed job (with
    `keep-going`, a `prepare` of its own would keep the run going for minutes). None with
    `device: cpu` (no GPU is asked for, no check runs). `ancient`: the record's time, or the
    check running again (workflow/rules/device.smk), never reruns anything. Results folders made
    before this check existed see these jobs' input set change once, and so do results made
    with `device: cpu` when the device changes: Snakemake reruns them (and what depends on them).
    """
    if config["device"] == "cpu":
        return []
    return ancient(LAYOUT.device_check)


LAYOUT = Layout(R)
FIG = LAYOUT.figures
TAB = LAYOUT.tables
EVALUATION_CSV = LAYOUT.evaluation
TRANSFER_CSV = LAYOUT.transfer_evaluation


def with_description(table):
    """output: of a job writing a CSV table: the table and its .json description (the digest
    that every reader checks; protolib.integrity.write_table)."""
    return [table, str(description_path(table))]


# ----------------------------------------------------------------------------- logs, benchmarks
def log_file(rule, *wildcards):
    """log: of one job, <results>/logs/<rule>/<wildcard values joined by />.log"""
    return LAYOUT.log(rule, *wildcards)


def benchmark_file(rule, *wildcards):
    """benchmark: of one job (time and memory), <results>/benchmarks/<rule>/....tsv"""
    return LAYOUT.benchmark(rule, *wildcards)


# ----------------------------------------------------------------------------- data
def data_path(dataset="{dataset}"):
    return LAYOUT.data(dataset)


def split_path(dataset="{dataset}", cls="{cls}"):
    return LAYOUT.split(dataset, cls)


def features_path(dataset, model):
    return feature_files(dataset, feature_key(config["models"][model]))[0]


def feature_files(dataset="{dataset}", fkey="{fkey}"):
    """The feature cache (.npy) and its description (.json)."""
    return LAYOUT.feature_files(dataset, fkey)


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


# ----------------------------------------------------------------------------- scores
def chunk_file(dataset="{dataset}", model="{model}", cls="{cls}", chunk="{chunk}"):
    return LAYOUT.chunk(dataset, model, cls, chunk)


def chunk_files(wildcards):
    return [
        chunk_file(wildcards.dataset, wildcards.model, wildcards.cls, c)
        for c in range(pl.n_chunks(config, wildcards.dataset))
    ]


def scores_file(dataset="{dataset}", model="{model}", cls="{cls}"):
    return LAYOUT.scores(dataset, model, cls)


# ----------------------------------------------------------------------------- subsets, evaluation
def subset_runs(method):
    """One method's (M, seed) pairs, in output order: one per M and repeat."""
    return [(M, s) for M in M_VALUES for s in pl.seeds(config, method)]


def subset_file(method, M, seed, dataset="{dataset}", model="{model}", cls="{cls}"):
    return LAYOUT.subset(method, M, seed, dataset, model, cls)


def subset_files(method, dataset="{dataset}", model="{model}", cls="{cls}"):
    return [
        subset_file(method, M, s, dataset, model, cls) for M, s in subset_runs(method)
    ]


def eval_files(method, dataset="{dataset}", model="{model}", cls="{cls}"):
    return [
        LAYOUT.evaluation_file(method, M, s, dataset, model, cls)
        for M, s in subset_runs(method)
    ]


def eval_full_file(dataset="{dataset}", model="{model}", cls="{cls}"):
    """The detector trained on the whole training set (the 100 % row)."""
    return LAYOUT.evaluation_full(dataset, model, cls)


def all_eval_files(dataset, model):
    files = []
    for cls in CLASSES[dataset]:
        files.append(eval_full_file(dataset, model, cls))
        for method in METHODS:
            files += eval_files(method, dataset, model, cls)
    return files


# ----------------------------------------------------------------------------- transfer
def transfer_files(name, method, cls="{cls}"):
    return [LAYOUT.transfer(name, method, M, s, cls) for M, s in subset_runs(method)]


def transfer_full_file(name, cls="{cls}"):
    return LAYOUT.transfer_full(name, cls)


def transfer_subsets(entry, source_cls):
    """The source subsets an entry evaluates for one class, in output order."""
    src = entry["source"]
    return [
        f
        for method in entry["methods"]
        for f in subset_files(method, src["dataset"], src["model"], source_cls)
    ]


def transfer_inputs(entry):
    """Input function of one entry's rule: both splits, the target model's inputs on each dataset
    (feature caches or prepared images) and the source subsets."""

    def inputs(w):
        src, tgt = entry["source"], entry["target"]
        source_cls = int(w.cls)
        target_cls = dict(entry["pairs"])[source_cls]
        out = {
            "device_check": device_checked(),
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
        files.append(transfer_full_file(entry["name"], source_cls))
        for method in entry["methods"]:
            files += transfer_files(entry["name"], method, source_cls)
    return files


def transfer_baselines(entry):
    """The target trained on its own whole training set, per class pair (the 100 % line)."""
    tgt = entry["target"]
    return [
        {
            "name": entry["name"],
            "source": entry["source"],
            "class": source_cls,
            "path": eval_full_file(tgt["dataset"], tgt["model"], target_cls),
        }
        for source_cls, target_cls in entry["pairs"]
    ]


# ----------------------------------------------------------------------------- report
# The results layout as a registered table's or figure's inputs see it
# (protolib.figures.registry.Paths): the helpers above, by short names.
from types import SimpleNamespace

REPORT_PATHS = SimpleNamespace(
    evaluation=EVALUATION_CSV,
    transfer=TRANSFER_CSV,
    data=data_path,
    split=split_path,
    features=features_path,
    scores=scores_file,
    subset=subset_file,
    subsets=subset_files,
)


def report_files(figure, outputs):
    """Every file of a registered table or figure, per output set in the figure's order; the file
    the HTML report shows (a table's HTML, a figure's PNG) carries its caption and labels.
    """
    folder = TAB if figure.kind == "table" else FIG
    caption = str(figure.caption or f"../report/{figure.name}.rst")
    files = []
    for out in outputs:
        for ext in figure.extensions():
            path = f"{folder}/{out.stem}{ext}"
            if ext == figure.shown_in_report:
                path = report(
                    path,
                    caption=caption,
                    category="Tables" if figure.kind == "table" else "Figures",
                    subcategory=figure.title,
                    labels={"result": figure.short_label, "shows": out.shows},
                )
            files.append(path)
    return files


wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    model=r"[A-Za-z0-9_]+",
    cls=r"\d+",
    chunk=r"\d+",
    fkey=r"[A-Za-z0-9_.\-]+",
