"""Expected wall time of each stage of the paper's study, per run (dataset x model).

For each model of the config (default ``config/paper.yaml``) the real detector, at the paper's
image size and settings, is run through the calls the rules make (``fit``, ``score``,
``score_matrix``, the backbone) at a few tiny sizes, under torch's FLOP counter and a clock. A
linear cost model per call (fixed + per image + per training step, and per candidate x val image
for the score matrix) is fitted to those points and scaled to each dataset's official sizes:

- ``features``: the frozen backbone over every image of the dataset (one job per dataset);
- ``scores``:   the K x |val| single-sample score matrix of every class (chunked jobs);
- ``select``:   every selection method on every class (CPU; evolutionary measured directly at the
                run's K, |val| and M for a tenth of the generations);
- ``evaluate``: one fit per (method, M, seed) and the 100 % fit, each scoring the test set.

Two columns are printed per stage: **GPU (estimated)** = counted FLOPs / ``--tflops`` (an
assumed sustained rate: an H100 running convnets under bf16 autocast at large batch sustains
roughly 50-100 TFLOP/s; ResNet-50 training at ~3000 img/s is ~74 TFLOP/s), but at least
``--step-ms`` per training step run in sequence (small models are bound by kernel launches;
per-candidate trainings run ``default_parallel_models`` at a time on a GPU), and **measured here**
= counted FLOPs at the rate (seconds per FLOP) measured on this machine's device over all of the
model's calls. On a GPU machine (``--device cuda``) the second column is that GPU's own rate. Weights are ``none`` (the
cost does not depend on them); nothing is downloaded.

    python benchmarks/bench_stages.py [--config config/paper.yaml] [--device auto] [--tflops 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from protolib.hyperparams import hyper_parameters
from protolib.models import DETECTORS, make_detector
from protolib.models.backbones import make_backbone
from protolib.models.trained_map import TrainedMapDetector
from protolib.selection import make_selector
from protolib.selection.evolutionary import PaperFitness, evolve

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Sizes:
    """Per normal class: official image counts and the paper's protocol."""

    classes: int
    images: int  # the whole dataset (the features job embeds all of it)
    train: int
    val: int
    test: int
    note: str = ""


def dataset_sizes(name: str, cfg: dict) -> Sizes:
    """Official counts; the one-vs-rest protocol from the config's split settings."""
    split = cfg.get("split", {})
    one_vs_rest = {"cifar10": (10, 6000), "cifar100": (20, 3000), "mnist": (10, 7000), "fashion_mnist": (10, 7000)}
    if name in one_vs_rest:
        classes, per_class = one_vs_rest[name]
        train = split.get("train", 4000)
        train = int(round(train * per_class)) if isinstance(train, float) else int(train)
        normal = (per_class - train) // 2
        anomalies = int(round(split.get("anomalies_per_other_class", 1.0) * normal)) * (classes - 1)
        return Sizes(
            classes,
            classes * per_class,
            train,
            normal + anomalies,
            normal + anomalies,
            "MNIST: ~7000 per class (6313-7877)" if name == "mnist" else "",
        )
    if name == "mvtec":  # 15 categories, 3629 train/good and 1725 test images in all
        return Sizes(15, 5354, 242, 58, 57, "per-category means")
    if name == "brats":  # 369 volumes x 5 slices; 101 healthy train slices (paper)
        return Sizes(1, 1845, 101, 80, 80)
    if name == "rsna":  # 26684 images, 8851 normal
        return Sizes(1, 26684, 8851 - 800, 800, 800)
    if name == "chexpert":
        return Sizes(1, 30000, 10000, 800, 800, "assumed: depends on the frontal / no-support-device filters")
    raise SystemExit(f"no official sizes known for dataset {name!r}")


# ------------------------------------------------------------------------------------- measuring
def images_for(n: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Meter:
    """Counts the FLOPs of calls and the seconds they took, in total."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.flops = 0.0
        self.seconds = 0.0

    def __call__(self, fn) -> float:
        counter = FlopCounterMode(display=False)
        sync(self.device)
        start = time.perf_counter()
        with counter:
            fn()
        sync(self.device)
        flops = float(counter.get_total_flops())
        self.flops += flops
        self.seconds += time.perf_counter() - start
        return flops


@dataclass
class ModelCost:
    """Linear cost models in FLOPs, and the device's measured seconds per FLOP for this model."""

    backbone_per_image: float
    fit_single: float  # fit on one image, all steps (PANDA does not train on one image)
    fit_fixed: float
    fit_per_image: float
    fit_per_image_step: float
    steps: int
    train_batch: int
    score_per_image: float
    matrix_per_candidate: float  # incl. training one model per candidate
    matrix_per_val: float
    matrix_per_pair: float
    seconds_per_flop: float
    parallel_on_gpu: int  # single-image models trained at once per candidate group on a GPU
    trains_per_candidate: bool

    def fit(self, M: int) -> float:
        if M == 1:
            return self.fit_single
        return self.fit_fixed + M * self.fit_per_image + self.steps * min(M, self.train_batch) * self.fit_per_image_step

    def matrix(self, K: int, V: int) -> float:
        return K * self.matrix_per_candidate + V * self.matrix_per_val + K * V * self.matrix_per_pair


def measure_model(model_cfg: dict, device: str) -> ModelCost:
    """Fit the linear cost models from calls at tiny sizes (training: 1 and 2 steps)."""
    cfg = {**model_cfg, "weights": "none"}
    if "parallel_models" in hyper_parameters(DETECTORS.get(cfg["detector"])):  # fae, rd
        cfg["parallel_models"] = 1
    reference = make_detector(cfg, device=device)
    steps = int(reference.__dict__.get("steps", 0))  # fit runs this many training steps
    train_batch = int(reference.__dict__.get("train_batch_size", 1))
    per_candidate_training = isinstance(reference, TrainedMapDetector)
    meter = Meter(device)

    def detector(s: int | None = None):
        torch.manual_seed(0)
        return make_detector({**cfg, **({"steps": s} if s is not None and steps else {})}, device=device)

    backbone = make_backbone(cfg, device=device)
    backbone(images_for(2))  # warm-up
    backbone_per_image = (meter(lambda: backbone(images_for(4))) - meter(lambda: backbone(images_for(2)))) / 2

    detector(1).fit(images_for(2))  # warm-up
    f = {
        (m, s): meter(lambda m=m, s=s: detector(s).fit(images_for(m)))
        for m, s in [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1)]
    }
    per_image_step = (f[2, 2] - f[2, 1]) / 2 if steps else 0.0
    per_image = f[3, 1] - f[2, 1] - per_image_step
    fixed = f[2, 1] - 2 * per_image - 2 * per_image_step
    fit_single = f[1, 1] + (steps - 1) * (f[1, 2] - f[1, 1])

    fitted = detector(1).fit(images_for(3))
    score_per_image = (meter(lambda: fitted.score(images_for(4))) - meter(lambda: fitted.score(images_for(2)))) / 2

    def sm(k: int, v: int, s: int = 1) -> float:
        d = detector(s if per_candidate_training else None)
        return meter(lambda: d.score_matrix(images_for(k), images_for(v)))

    c22, c32, c23, c33 = sm(2, 2), sm(3, 2), sm(2, 3), sm(3, 3)
    per_pair = c33 - c32 - c23 + c22
    per_candidate = c32 - c22 - 2 * per_pair
    per_val = c23 - c22 - 2 * per_pair
    if per_candidate_training:  # each candidate's model trains `steps` steps, measured at 1 and 2
        per_candidate += (steps - 1) * (sm(2, 2, 2) - c22) / 2
    terms = [
        max(t, 0.0)
        for t in (
            backbone_per_image,
            fit_single,
            fixed,
            per_image,
            per_image_step,
            score_per_image,
            per_candidate,
            per_val,
            per_pair,
        )
    ]
    b, single, fixed, per_image, per_image_step, score_per_image, per_candidate, per_val, per_pair = terms
    return ModelCost(
        b,
        single,
        fixed,
        per_image,
        per_image_step,
        steps,
        train_batch,
        score_per_image,
        per_candidate,
        per_val,
        per_pair,
        meter.seconds / max(meter.flops, 1.0),
        int(getattr(reference, "default_parallel_models", 1)),
        per_candidate_training,
    )


def select_seconds(config: dict, K: int, V: int, classes: int) -> float:
    """All selection methods on all classes, on the CPU: evolutionary timed at the run's sizes."""
    sel = config["selection"]
    evo = {**{"population": 1000, "generations": 500}, **sel.get("evolutionary", {})}
    rng = np.random.default_rng(0)
    fitness = PaperFitness(rng.random((K, V)), (rng.random(V) < 0.5).astype(int))
    total = 0.0
    for M in sel["M"]:
        if "evolutionary" in sel["methods"] and M <= K:
            generations = max(1, evo["generations"] // 10)
            start = time.perf_counter()
            evolve(fitness, K, M, evo["population"], generations, np.random.default_rng(1))
            total += (time.perf_counter() - start) * evo["generations"] / generations
    if "gmm" in sel["methods"]:
        from protolib.selection.base import SelectionContext

        dim = 512
        context = SelectionContext(
            candidates=np.arange(K),
            pool_ids=np.arange(min(K * 4, 4000)),
            pool_features=rng.random((min(K * 4, 4000), dim)),
        )
        selector = make_selector("gmm", sel)
        for M in sel["M"]:
            start = time.perf_counter()
            selector.select(context, M, np.random.default_rng(0))
            total += time.perf_counter() - start
    return total * classes


def human(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tflops", type=float, default=60.0, help="assumed sustained GPU rate (TFLOP/s)")
    parser.add_argument(
        "--step-ms",
        type=float,
        default=2.0,
        help="assumed least GPU time of one training step (kernel launches; small models)",
    )
    parser.add_argument("--runs", nargs="*", help="dataset:model pairs to include (default: all runs)")
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    config = yaml.safe_load(Path(args.config).read_text())
    runs = [(r["dataset"], r["model"]) for r in config["runs"]]
    if args.runs:
        runs = [r for r in runs if f"{r[0]}:{r[1]}" in args.runs]
    rate = args.tflops * 1e12
    here = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"# Stage wall times ({args.config}); GPU estimate at {args.tflops:g} TFLOP/s; measured on {here}\n")
    print("| run | stage | work | GPU (estimated) | measured here (extrapolated) |")
    print("|---|---|---|---|---|")
    models: dict[str, ModelCost] = {}
    sel = config["selection"]
    fits_per_M = sum(make_selector(m, sel).repeats() for m in sel["methods"])
    fits_per_class = 1 + fits_per_M * len(sel["M"])
    for dataset, model in runs:
        if model not in models:
            models[model] = measure_model(config["models"][model], device)
        mc, s = models[model], dataset_sizes(dataset, config["datasets"][dataset])
        K = min(int(config["datasets"][dataset].get("candidates", 300)), s.train)
        features = s.images * mc.backbone_per_image
        scores = s.classes * mc.matrix(K, s.val)
        one_fit = lambda M: mc.fit(M) + s.test * mc.score_per_image
        evaluate = s.classes * (sum(fits_per_M * one_fit(M) for M in sel["M"]) + one_fit(s.train))
        select = select_seconds(config, K, s.val, s.classes)
        name = f"{dataset} / {model}" + (f" ({s.note})" if s.note else "")
        # optimizer steps run one after another (a floor on the GPU time of small models)
        score_steps = s.classes * -(-K // mc.parallel_on_gpu) * mc.steps if mc.trains_per_candidate else 0
        evaluate_steps = s.classes * fits_per_class * mc.steps
        rows = [
            ("features", f"{s.images} images", features, 0),
            ("scores", f"{s.classes} classes x K={K} x val {s.val}", scores, score_steps),
            ("evaluate", f"{s.classes} classes x {fits_per_class} fits, test {s.test}", evaluate, evaluate_steps),
        ]
        for stage, work, flops, n_steps in rows:
            gpu = max(flops / rate, n_steps * args.step_ms / 1e3)
            print(
                f"| {name} | {stage} | {work} | {human(gpu)} ({flops / 1e15:.2g} PFLOP) | "
                f"{human(flops * mc.seconds_per_flop)} |",
                flush=True,
            )
        print(f"| {name} | select (CPU) | {s.classes} classes x M in {sel['M']} | CPU stage | {human(select)} |")


if __name__ == "__main__":
    main()
