"""Per-sample score-matrix cost of the image detectors (not a test).

For each detector: the fast ``score_matrix`` (K candidates x V val images) in candidates/s, and
its speed-up over slower ways to get the same matrix:

- ``definition``: ``Detector.score_matrix`` (a deep copy fitted on each candidate alone, then
  scoring the val images; what the pipeline would do without a fast path);
- ``sequential`` (FAE, RD): the same single-image trainings one after another, on feature maps
  computed once (the fair comparison for the batched vmap training).
  For ``fae`` (the reference's BatchNorm, ``extractor_bn: batch``) the features then use the
  extractor's own statistics: a timing reference, not the same numbers; ``fae-eval`` is exact.

Random weights (``weights: none``), ResNet18 backbones, small images, few steps: the point is the
ratio, not absolute speed. Run:  python benchmarks/bench_detectors.py [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np
import skimage.data
import torch

from protolib.models import Detector, make_detector
from protolib.models.vmap_training import train_plain


def crops(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tex = skimage.data.brick()
    out = []
    for _ in range(n):
        y, x = rng.integers(0, tex.shape[0] - size, 2)
        out.append(tex[y : y + size, x : x + size])
    return np.stack(out)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def sequential_shared_features(det, train: np.ndarray, val: np.ndarray) -> np.ndarray:
    """One single-image training after another (ordinary loop), features computed once."""
    ft, fv = det.features(train), det.features(val)
    rows = []
    for i in range(len(train)):
        batch = tuple(f[i : i + 1] for f in ft)
        net = det.new_net()
        train_plain(
            net, det.loss, lambda step, b=batch: b, det.steps, det.optimizer(list(net.parameters())), det.noise_fn()
        )
        with torch.inference_mode():
            rows.append(det.reduce(det.maps_from(det.outputs(net, fv), fv)).double().cpu().numpy())
    return np.stack(rows)


CASES = [
    ("panda", {"detector": "panda", "backbone": "resnet18", "weights": "none", "image_size": 32}),
    (
        "patchcore",
        {
            "detector": "patchcore",
            "backbone": "resnet18",
            "weights": "none",
            "image_size": 64,
            "pretrain_embed_dim": 256,
            "target_embed_dim": 256,
        },
    ),
    ("fae", {"detector": "fae", "backbone": "resnet18", "weights": "none", "image_size": 32}),
    # the reference's BatchNorm (default, above) recomputes val features per candidate; eval mode does not
    (
        "fae-eval",
        {"detector": "fae", "backbone": "resnet18", "weights": "none", "image_size": 32, "extractor_bn": "imagenet"},
    ),
    (
        "fae-small",
        {
            "detector": "fae",
            "backbone": "resnet18",
            "weights": "none",
            "image_size": 32,
            "hidden_dims": [8, 16],
            "layers": ["layer1"],
        },
    ),
    ("rd", {"detector": "rd", "backbone": "resnet18", "weights": "none", "image_size": 64}),
    (
        "rd-small",
        {
            "detector": "rd",
            "backbone": "resnet18",
            "weights": "none",
            "image_size": 64,
            "width": 0.125,
            "bottleneck_blocks": 1,
            "decoder_blocks": [1, 1, 1],
        },
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=25)
    parser.add_argument("--val", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10, help="training steps of FAE / RD")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="*", help="case names to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    k = args.candidates
    print(
        f"device {args.device}, {args.threads} thread(s), K={k} candidates, V={args.val} val images, "
        f"FAE/RD steps={args.steps}, torch {torch.__version__}"
    )
    print("fast = score_matrix (FAE/RD: all K single-image models trained at once, parallel_models=K);")
    print("auto = FAE/RD score_matrix with parallel_models: auto (1 on the CPU); seq = one training after")
    print("another on shared features; def = Detector.score_matrix (deep copy + fit + score per candidate)")
    header = (
        f"{'case':<10} {'params':>7} {'fast cand/s':>11} {'fast s':>8} {'auto s':>8} {'seq s':>8} {'def s':>8} "
        f"{'seq/fast':>8} {'def/fast':>8} {'max|fast-def|':>13}"
    )
    print(header)
    print("-" * len(header))
    train = crops(k, 48, seed=1)
    val = crops(args.val, 48, seed=2)
    for name, cfg in CASES:
        if args.only and name not in args.only:
            continue
        trained = cfg["detector"] in ("fae", "rd")
        if trained:
            cfg = {**cfg, "steps": args.steps, "parallel_models": k}
        torch.manual_seed(0)
        det = make_detector(cfg, device=args.device)
        det.score_matrix(train[:2], val[:2])  # warm-up (allocator, vmap, mkldnn primitives)
        fast, t_fast = timed(det.score_matrix, train, val)
        slow, t_def = timed(Detector.score_matrix, det, train, val)
        params, t_auto, t_seq = "-", float("nan"), float("nan")
        if trained:
            params = f"{sum(p.numel() for p in det.new_net().parameters()) / 1e6:.2f}M"
            _, t_seq = timed(sequential_shared_features, det, train, val)
            auto = make_detector({**cfg, "parallel_models": "auto"}, device=args.device)
            auto.extractor.load_state_dict(det.extractor.state_dict())
            _, t_auto = timed(auto.score_matrix, train, val)
        print(
            f"{name:<10} {params:>7} {k / t_fast:>11.2f} {t_fast:>8.2f} {t_auto:>8.2f} {t_seq:>8.2f} {t_def:>8.2f} "
            f"{t_seq / t_fast:>8.2f} {t_def / t_fast:>8.2f} {np.abs(fast - slow).max():>13.2e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
