"""Does every GPU job of the paper's study fit its SLURM time limit? One row per (run, rule):
the estimated GPU minutes of ONE job of that rule (benchmarks/bench_stages.py's cost model,
scaled to the dataset's official sizes) beside the minutes the SLURM profile requests for it on
the first attempt (``workflow/profiles/slurm/config.yaml``: ``set-resources``, else
``default-resources``). A job whose estimate exceeds its request is marked ``NO``.

    python benchmarks/job_minutes.py [--config config/paper.yaml] [--tflops 60] [--runs cifar10:panda]

Jobs: ``features`` embeds a whole dataset; ``score_chunk`` scores ``scores.chunk_size``
candidates of one class against its val set; ``evaluate_<method>`` fits every (M, repeat) subset
of one method for one class and scores the test set after each fit; ``evaluate_full`` fits the
whole training set once. The estimate assumes ``--tflops`` sustained and at least ``--step-ms``
per training step run in sequence (as bench_stages.py); measuring runs the detectors at tiny
sizes on this machine's device (minutes on a CPU for the ResNet152/WRN50 models).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from bench_stages import REPO, ModelCost, dataset_sizes, measure_model  # noqa: E402

from protolib.selection import make_selector  # noqa: E402

PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"


def requested_minutes(rule: str, profile: dict) -> float:
    """The profile's runtime for ``rule`` on the first attempt (``attempt`` = 1)."""
    value = profile.get("set-resources", {}).get(rule, {}).get("runtime")
    if value is None:
        value = profile.get("default-resources", {}).get("runtime", 0)
    return float(eval(str(value), {}, {"attempt": 1}))  # the profile's own Python expressions


def job_rows(config: dict, dataset: str, mc: ModelCost) -> list[tuple[str, str, float, int]]:
    """(rule, work, FLOPs, training steps run in sequence) of one job of each GPU rule."""
    s = dataset_sizes(dataset, config["datasets"][dataset])
    K = min(int(config["datasets"][dataset].get("candidates", 300)), s.train)
    chunk = min(int(config["scores"]["chunk_size"]), K)
    sel = config["selection"]

    def one_fit(M: int) -> float:
        return mc.fit(M) + s.test * mc.score_per_image

    rows = [
        ("features", f"{s.images} images", s.images * mc.backbone_per_image, 0),
        ("score_chunk", f"{chunk} candidates x val {s.val}", mc.matrix(chunk, s.val),
         -(-chunk // mc.parallel_on_gpu) * mc.steps if mc.trains_per_candidate else 0),
    ]
    for method in sel["methods"]:
        repeats = make_selector(method, sel).repeats()
        flops = sum(repeats * one_fit(M) for M in sel["M"])
        rows.append((f"evaluate_{method}", f"{repeats * len(sel['M'])} fits, test {s.test}", flops,
                     repeats * len(sel["M"]) * mc.steps))
    rows.append(("evaluate_full", f"1 fit on {s.train}, test {s.test}", one_fit(s.train), mc.steps))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    parser.add_argument("--device", default="cpu", help="where the tiny measurements run (FLOPs do not depend on it)")
    parser.add_argument("--tflops", type=float, default=60.0, help="assumed sustained GPU rate (TFLOP/s)")
    parser.add_argument("--step-ms", type=float, default=2.0, help="least GPU time of one training step")
    parser.add_argument("--runs", nargs="*", help="dataset:model pairs (default: all runs of the config)")
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    profile = yaml.safe_load(PROFILE.read_text())
    runs = [(r["dataset"], r["model"]) for r in config["runs"]]
    if args.runs:
        runs = [r for r in runs if f"{r[0]}:{r[1]}" in args.runs]
    print(f"# One job per rule: estimated GPU minutes at {args.tflops:g} TFLOP/s vs the SLURM profile's request\n")
    print("| run | rule | one job | estimated min | requested min | fits |")
    print("|---|---|---|---|---|---|")
    models: dict[str, ModelCost] = {}
    misfits = 0
    for dataset, model in runs:
        if model not in models:
            models[model] = measure_model(config["models"][model], args.device)
        for rule, work, flops, steps in job_rows(config, dataset, models[model]):
            minutes = max(flops / (args.tflops * 1e12), steps * args.step_ms / 1e3) / 60
            request = requested_minutes(rule, profile)
            fits = minutes <= request
            misfits += not fits
            print(f"| {dataset} / {model} | {rule} | {work} | {minutes:.1f} | {request:.0f} | {'yes' if fits else 'NO'} |",
                  flush=True)
    print(f"\n{misfits} job kind(s) estimated over their request" if misfits else "\nevery job fits its request")
    return 1 if misfits else 0


if __name__ == "__main__":
    sys.exit(main())
