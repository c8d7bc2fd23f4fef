"""GPU acceptance: does this machine's GPU give the CPU's answers, fast enough? (docs/gpu.md)

Run on a machine with one GPU (under 10 minutes)::

    python benchmarks/gpu_acceptance.py                 # --device cuda, the paper's architectures
    python benchmarks/gpu_acceptance.py --tiny --device cpu   # the CI self-test (under a minute)

1. Prints torch, CUDA, driver, GPU and ``resolve_device("auto")`` from a fresh process.
2. Writes random weights per backbone as a state_dict file (BatchNorm statistics calibrated on
   random images, so activations stay O(1) through 50 blocks; ``weights: none`` overflows half
   precision), and runs every detector with ``weights: PATH`` at the paper's architecture and
   image size (``--tiny``: ResNet18, 32-64 px) with a few candidates and steps, on the CPU and on
   ``--device``; each case is timed and, on CUDA, its peak GPU memory is recorded.
3. Checks: every output finite; knn on pixels bit-equal; frozen-feature detectors within the
   ``rtol`` of :data:`protolib.models.precision.AGREEMENT`; trained detectors' Spearman rank
   correlation and test-AUROC difference reported beside the expected values there; batched
   (vmap) training equal to one fit per candidate in float64 on ``--device``.
4. Unless ``--tiny`` (or with ``--study``): ``snakemake --until merge_scores evaluate_full`` of the
   default study (config.yaml) with ``device=cpu`` and ``device=<--device>``: identical scores.

Exits 1 if any check fails. ``--inject-nan`` puts a NaN into the weights the ``--device`` run
reads, to show that the finiteness check fails the run (the script's own test uses it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from protolib.metrics import auroc  # noqa: E402
from protolib.models import make_detector  # noqa: E402
from protolib.models.precision import AGREEMENT  # noqa: E402

ENV_PROBE = """
import json, subprocess, torch
from protolib.models.backbones import resolve_device
info = {"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "resolve_device('auto')": resolve_device("auto")}
if torch.cuda.is_available():
    info["gpu"] = torch.cuda.get_device_name(0)
    info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
try:
    info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=20).stdout.strip() or None
except (OSError, subprocess.SubprocessError):
    info["driver"] = None
print(json.dumps(info))
"""


@dataclass
class Sizes:
    """What each case runs at: the paper's architectures and sizes, or the tiny CI ones."""

    knn_backbone: str = "resnet152"
    panda_backbone: str = "resnet152"
    wide: str = "wide_resnet50_2"
    fae_backbone: str = "resnet18"
    frozen_size: int = 224  # knn, panda, patchcore
    map_size: int = 128  # fae, rd
    n_train: int = 8
    n_test: int = 16
    candidates: int = 4
    steps: int = 5
    extra: dict = field(default_factory=dict)


PAPER = Sizes()
TINY = Sizes(
    "resnet18",
    "resnet18",
    "resnet18",
    "resnet18",
    frozen_size=32,
    map_size=64,
    n_train=3,
    n_test=4,
    candidates=2,
    steps=1,
    extra={
        "patchcore": {"pretrain_embed_dim": 32, "target_embed_dim": 32},
        "rd": {"width": 0.25, "bottleneck_blocks": 1, "decoder_blocks": [1, 1, 1]},
        "fae": {"hidden_dims": [4, 8], "image_size": 32},
    },
)


def probe_environment() -> dict:
    """torch / CUDA / driver / GPU and ``resolve_device('auto')``, from a fresh process (what a
    job sees, not what this process has set up)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", ENV_PROBE], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def calibrated_weights(name: str, size: int, path: Path, nan: bool = False) -> Path:
    """A seeded random ResNet whose BatchNorm statistics are those of random images (cumulative
    average over a few batches), saved as a state_dict: activations stay O(1) at every depth."""
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = getattr(torchvision.models, name)(weights=None)
        norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        net.train()
        with torch.no_grad():
            net(torch.randn(4, 3, size, size))
    state = net.state_dict()
    if nan:
        state["layer1.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, path)
    return path


def images(n: int, seed: int, anomalous: bool = False) -> np.ndarray:
    """Smooth grey 64x64 'textures'; anomalous ones carry a bright square."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 8, 8))
    x = np.kron(base, np.ones((8, 8)))
    x = (x - x.min()) / (np.ptp(x) + 1e-9) * 200 + 20
    if anomalous:
        x[:, 20:36, 20:36] = 250
    return x.astype(np.uint8)


def cases(sizes: Sizes, weights: Callable[[str, int], str]) -> dict[str, dict]:
    """Case name -> model block (``AGREEMENT`` is keyed by the name's detector part)."""
    s, x = sizes, sizes.extra
    return {
        "knn_pixels": {"detector": "knn", "backbone": "pixels"},
        "knn_resnet": {
            "detector": "knn",
            "backbone": s.knn_backbone,
            "weights": weights(s.knn_backbone, s.frozen_size),
            "image_size": s.frozen_size,
        },
        "panda_single": {
            "detector": "panda",
            "backbone": s.panda_backbone,
            "weights": weights(s.panda_backbone, s.frozen_size),
            "image_size": s.frozen_size,
        },
        "patchcore": {
            "detector": "patchcore",
            "backbone": s.wide,
            "weights": weights(s.wide, s.frozen_size),
            "image_size": s.frozen_size,
            **x.get("patchcore", {}),
        },
        "panda": {
            "detector": "panda",
            "backbone": s.panda_backbone,
            "weights": weights(s.panda_backbone, s.frozen_size),
            "image_size": s.frozen_size,
            "steps": s.steps,
            "train_batch_size": 4,
        },
        "fae_batch": {
            "detector": "fae",
            "backbone": s.fae_backbone,
            "weights": weights(s.fae_backbone, s.map_size),
            "image_size": s.map_size,
            "steps": s.steps,
            "extractor_bn": "batch",
            "train_batch_size": 2,
            **x.get("fae", {}),
        },
        "fae_imagenet": {
            "detector": "fae",
            "backbone": s.fae_backbone,
            "weights": weights(s.fae_backbone, s.map_size),
            "image_size": s.map_size,
            "steps": s.steps,
            "extractor_bn": "imagenet",
            "train_batch_size": 2,
            **x.get("fae", {}),
        },
        "rd": {
            "detector": "rd",
            "backbone": s.wide,
            "weights": weights(s.wide, s.map_size),
            "image_size": s.map_size,
            "steps": s.steps,
            **x.get("rd", {}),
        },
    }


def agreement_of(case: str):
    return AGREEMENT.get(case) or AGREEMENT[case.split("_")[0]]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 1 else 1.0


def run_case(cfg: dict, device: str, data: dict) -> tuple[np.ndarray, float, float | None]:
    """The case's output on ``device`` (single-sample matrix for panda_single, else test scores),
    seconds, and peak GPU memory in GiB (None on the CPU)."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    det = make_detector(cfg, device=device)
    if cfg["detector"] == "panda" and "steps" not in cfg:
        out = det.score_matrix(data["train"][: data["candidates"]], data["test"])
    else:
        out = det.fit(data["train"]).score(det.prepared_images(data["test"]))
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return np.asarray(out, dtype=np.float64), seconds, peak


def compare(case: str, ref: np.ndarray, got: np.ndarray, labels: np.ndarray) -> tuple[bool, str]:
    """(passed, what was measured) of one case's device output against the CPU's."""
    if not (np.isfinite(ref).all() and np.isfinite(got).all()):
        return False, "non-finite output"
    agreement = agreement_of(case)
    if agreement.kind == "exact":
        same = np.array_equal(ref, got)
        return same, "bit-equal" if same else f"max |diff| {np.abs(ref - got).max():.3g} (must be bit-equal)"
    if agreement.kind == "frozen":
        rel = float(np.abs(ref - got).max() / max(np.abs(ref).max(), 1e-30))
        return rel <= agreement.rtol, f"max rel diff {rel:.2e} (<= {agreement.rtol:g})"
    corr = spearman(ref.ravel(), got.ravel())
    dauc = abs(auroc(labels, ref) - auroc(labels, got))
    note = "" if corr >= agreement.min_rank_corr and dauc <= agreement.max_auroc_diff else " BELOW EXPECTED"
    return True, (
        f"spearman {corr:.4f} (expect >= {agreement.min_rank_corr}), |dAUROC| {dauc:.4f} "
        f"(expect <= {agreement.max_auroc_diff}){note}"
    )


def vmap_equality(cfg: dict, device: str, data: dict) -> tuple[bool, str]:
    """Batched training of the candidates equals one fit per candidate (float64, on ``device``)."""
    cfg = {**cfg, "dtype": "float64"}
    batched = make_detector({**cfg, "parallel_models": data["candidates"]}, device=device)
    matrix = batched.score_matrix(data["train"][: data["candidates"]], data["test"])
    single = make_detector(cfg, device=device)
    rows = np.stack([single.fit(data["train"][i : i + 1]).score(data["test"]) for i in range(data["candidates"])])
    rel = float(np.abs(matrix - rows).max() / max(np.abs(rows).max(), 1e-30))
    return rel <= 1e-9, f"vmap vs one fit per candidate, float64: max rel diff {rel:.1e} (<= 1e-9)"


def study_equality(device: str, workdir: Path) -> tuple[bool, str]:
    """The default study's score matrices and 100 % AUROCs with device=cpu and device=``device``."""
    outs = {}
    for side, dev in (("cpu", "cpu"), ("device", device)):
        results = workdir / f"results_{side}"
        cmd = [
            "snakemake",
            "--cores",
            "2",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(REPO / "config.yaml"),
            "--config",
            f"device={dev}",
            f"results={results}",
            "--until",
            "merge_scores",
            "evaluate_full",
            "--quiet",
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if run.returncode != 0:
            return False, f"snakemake with device={dev} failed: {run.stderr.strip()[-500:]}"
        outs[side] = results
    mismatched, n = [], 0
    for path in sorted(outs["cpu"].rglob("*")):
        if path.suffix not in (".npz", ".json") or "logs" in path.parts or "benchmarks" in path.parts:
            continue
        other = outs["device"] / path.relative_to(outs["cpu"])
        n += 1
        if path.suffix == ".npz":
            a, b = np.load(path, allow_pickle=False), np.load(other, allow_pickle=False)
            same = all(np.array_equal(a[k], b[k]) for k in a.files if k != "meta")
        else:
            a, b = json.loads(path.read_text()), json.loads(other.read_text())
            same = all(a.get(k) == b.get(k) for k in ("test_auroc", "ids", "n_train"))
        if not same:
            mismatched.append(str(path.relative_to(outs["cpu"])))
    if n == 0:
        return False, "the default study wrote no score files"
    return not mismatched, f"{n} files compared, {len(mismatched)} differ {mismatched[:3]}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="the device compared with the CPU (default cuda)")
    p.add_argument("--tiny", action="store_true", help="ResNet18 at 32-64 px, 2 steps (CI; under a minute)")
    p.add_argument("--cases", nargs="*", help="run only these cases")
    p.add_argument(
        "--study",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compare the default study's score files (default: on unless --tiny)",
    )
    p.add_argument("--inject-nan", action="store_true", help="a NaN in the --device run's weights (self-test)")
    args = p.parse_args(argv)
    sizes = TINY if args.tiny else PAPER
    failures = []

    env = probe_environment()
    print("environment:", json.dumps(env))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"FAIL: --device {args.device} but torch.cuda.is_available() is False in this process")
        return 1

    with tempfile.TemporaryDirectory(prefix="gpu_acceptance_") as tmp:
        tmp = Path(tmp)
        files: dict[tuple[str, int, bool], str] = {}

        def weights_for(nan: bool) -> Callable[[str, int], str]:
            def get(name: str, size: int) -> str:
                key = (name, size, nan)
                if key not in files:
                    files[key] = str(
                        calibrated_weights(name, size, tmp / f"{name}-{size}{'-nan' if nan else ''}.pt", nan)
                    )
                return files[key]

            return get

        normal, anomalous = images(sizes.n_test // 2, 1), images(sizes.n_test - sizes.n_test // 2, 2, anomalous=True)
        data = {
            "train": images(sizes.n_train, 0),
            "test": np.concatenate([normal, anomalous]),
            "candidates": sizes.candidates,
        }
        labels = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))].astype(int)
        on_cpu = cases(sizes, weights_for(False))
        on_device = cases(sizes, weights_for(args.inject_nan))
        names = args.cases or list(on_cpu)
        print(f"\n{'case':18} {'cpu s':>7} {args.device + ' s':>9} {'peak GiB':>9}  result")
        for name in names:
            try:
                ref, t_cpu, _ = run_case(on_cpu[name], "cpu", data)
                got, t_dev, peak = run_case(on_device[name], args.device, data)
                ok, what = compare(name, ref, got, labels)
            except Exception as err:  # a failed case is a reported failure, not a crash
                ok, what, t_cpu, t_dev, peak = False, f"{type(err).__name__}: {err}", float("nan"), float("nan"), None
            peak_s = f"{peak:.2f}" if peak is not None else "-"
            print(f"{name:18} {t_cpu:7.1f} {t_dev:9.1f} {peak_s:>9}  {'ok  ' if ok else 'FAIL'} {what}")
            if not ok:
                failures.append(name)
        for name in [n for n in ("fae_batch", "fae_imagenet", "rd") if n in names]:
            try:
                ok, what = vmap_equality(on_cpu[name], args.device, data)
            except Exception as err:
                ok, what = False, f"{type(err).__name__}: {err}"
            print(f"{name + ' vmap':18} {'':7} {'':9} {'':>9}  {'ok  ' if ok else 'FAIL'} {what}")
            if not ok:
                failures.append(name + " vmap")
        if args.study if args.study is not None else not args.tiny:
            ok, what = study_equality(args.device, tmp)
            print(f"{'default study':18} {'':7} {'':9} {'':>9}  {'ok  ' if ok else 'FAIL'} {what}")
            if not ok:
                failures.append("default study")

    print(f"\n{'FAILED: ' + ', '.join(failures) if failures else 'all checks passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
