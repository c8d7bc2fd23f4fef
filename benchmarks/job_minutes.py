"""Does every GPU job of the paper's study fit its SLURM time limit? One row per (run, rule):
the estimated GPU minutes of ONE job of that rule (benchmarks/bench_stages.py's cost model,
scaled to the dataset's official sizes) beside the minutes the rule requests on the first attempt
(the config's ``runtime_minutes``, schema defaults filled in: protolib.slurm.runtime_minutes, the
function the rules call). A job whose estimate exceeds its request is marked ``NO`` (exit 1).
Then a ``runtime_minutes:`` block to paste into the config: per key, ``--margin`` times the
largest estimate, rounded up to 30 minutes, at least ``--floor``.

    python benchmarks/job_minutes.py [--config config/paper.yaml] [--tflops 15] [--runs cifar10:panda]

Jobs: ``features`` embeds a whole dataset; ``score_chunk`` scores ``scores.chunk_size``
candidates of one class against its val set; ``evaluate_<method>`` fits every (M, repeat) subset
of one method for one class and scores the test set after each fit; ``evaluate_full`` fits the
whole training set once. The estimate assumes ``--tflops`` sustained (default 15: float32 with
TF32 off, the default precision, on an A100-class GPU, 19.5 TFLOP/s peak) and at least
``--step-ms`` per training step run in sequence (as bench_stages.py); measuring runs the
detectors at tiny sizes on this machine's device (minutes on a CPU for the ResNet152/WRN50 models).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml
from bench_stages import REPO, ModelCost, dataset_sizes, measure_model

from protolib.config import schema
from protolib.selection import make_selector
from protolib.slurm import RUNTIME_FAMILIES, runtime_minutes


def with_runtime_defaults(config: dict) -> dict:
    """The config with ``runtime_minutes`` completed by the schema's defaults (paper.yaml cannot
    be validated here: its data roots are placeholders)."""
    spec = schema()["properties"]["runtime_minutes"]["properties"]
    defaults = {key: value["default"] for key, value in spec.items()}
    return {**config, "runtime_minutes": {**defaults, **config.get("runtime_minutes", {})}}


def runtime_key(rule: str) -> str:
    """The ``runtime_minutes`` key a recommendation is printed under: the rule's family for
    evaluate_<method> and transfer_<name>, else the rule."""
    family = rule.split("_", 1)[0]
    return family if family in RUNTIME_FAMILIES and rule != "evaluate_full" else rule


def recommended(minutes: float, margin: float, floor: int) -> int:
    """``margin`` times the estimate, rounded up to 30 minutes, at least ``floor``."""
    return max(floor, 30 * math.ceil(margin * minutes / 30))


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
        (
            "score_chunk",
            f"{chunk} candidates x val {s.val}",
            mc.matrix(chunk, s.val),
            -(-chunk // mc.parallel_on_gpu) * mc.steps if mc.trains_per_candidate else 0,
        ),
    ]
    for method in sel["methods"]:
        repeats = make_selector(method, sel).repeats()
        flops = sum(repeats * one_fit(M) for M in sel["M"])
        rows.append(
            (
                f"evaluate_{method}",
                f"{repeats * len(sel['M'])} fits, test {s.test}",
                flops,
                repeats * len(sel["M"]) * mc.steps,
            )
        )
    rows.append(("evaluate_full", f"1 fit on {s.train}, test {s.test}", one_fit(s.train), mc.steps))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    parser.add_argument("--device", default="cpu", help="where the tiny measurements run (FLOPs do not depend on it)")
    parser.add_argument("--tflops", type=float, default=15.0, help="assumed sustained GPU rate (TFLOP/s)")
    parser.add_argument("--step-ms", type=float, default=2.0, help="least GPU time of one training step")
    parser.add_argument("--runs", nargs="*", help="dataset:model pairs (default: all runs of the config)")
    parser.add_argument("--margin", type=float, default=1.5, help="recommended request = margin x estimate")
    parser.add_argument("--floor", type=int, default=60, help="least recommended request (minutes)")
    args = parser.parse_args()
    config = with_runtime_defaults(yaml.safe_load(Path(args.config).read_text()))
    runs = [(r["dataset"], r["model"]) for r in config["runs"]]
    if args.runs:
        runs = [r for r in runs if f"{r[0]}:{r[1]}" in args.runs]
    print(f"# One job per rule: estimated GPU minutes at {args.tflops:g} TFLOP/s vs the rule's request\n")
    print("| run | rule | one job | estimated min | requested min | fits |")
    print("|---|---|---|---|---|---|")
    models: dict[str, ModelCost] = {}
    misfits = 0
    largest: dict[str, float] = {}
    for dataset, model in runs:
        if model not in models:
            models[model] = measure_model(config["models"][model], args.device)
        for rule, work, flops, steps in job_rows(config, dataset, models[model]):
            minutes = max(flops / (args.tflops * 1e12), steps * args.step_ms / 1e3) / 60
            request = runtime_minutes(config, rule)
            largest[runtime_key(rule)] = max(largest.get(runtime_key(rule), 0.0), minutes)
            fits = minutes <= request
            misfits += not fits
            print(
                f"| {dataset} / {model} | {rule} | {work} | {minutes:.1f} | {request:.0f} | "
                f"{'yes' if fits else 'NO'} |",
                flush=True,
            )
    print(f"\n{misfits} job kind(s) estimated over their request" if misfits else "\nevery job fits its request")
    print(f"\n# {args.margin:g} x the largest estimate, rounded up to 30 min, at least {args.floor}:")
    print("runtime_minutes:")
    for key, minutes in largest.items():
        print(f"  {key}: {recommended(minutes, args.margin, args.floor)}")
    return 1 if misfits else 0


if __name__ == "__main__":
    sys.exit(main())
