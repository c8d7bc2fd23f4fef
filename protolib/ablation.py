"""The Eq. 3 ablation: evolutionary fitness {paper, balanced, auroc} x val set {literal, balanced}.

    python -m protolib.ablation [--fitness paper balanced auroc] [--out results/fitness_ablation.md]

For each study config (one per val set) the study's own stage functions run in one process, on
the study's own files under its ``results`` folder (made here if missing, reused if present:
run after the study, this only adds the evolutionary subsets of the other fitness functions
under ``<results>/ablation/``): greedy, random and the evolutionary algorithm with each fitness,
every subset evaluated on the test split as in the study. Returns mean test AUROC (%) per
(val set, method, M), with mean ± std over seeds for random.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from protolib import config as config_module
from protolib import io
from protolib import pipeline as pl
from protolib.checks import read_result
from protolib.layout import Layout
from protolib.models.backbones import feature_key

FITNESSES = ("paper", "balanced", "auroc")


def _study_inputs(cfg: dict[str, Any], dataset: str, model: str, cls: int) -> dict[str, Path]:
    """The study's data, feature, split and score files of one class (made when missing)."""

    layout = Layout(cfg["results"])
    fkey = feature_key(cfg["models"][model])
    paths = {
        "data": Path(layout.data(dataset)),
        "features": Path(layout.feature_files(dataset, fkey)[0]),
        "split": Path(layout.split(dataset, cls)),
        "scores": Path(layout.scores(dataset, model, cls)),
    }
    if not paths["data"].exists():
        pl.prepare_dataset(cfg, dataset, paths["data"])
    if not paths["features"].exists():
        pl.make_features(cfg, dataset, model, paths["data"], paths["features"], layout.feature_files(dataset, fkey)[1])
    if not paths["split"].exists():
        pl.make_split(cfg, dataset, cls, paths["data"], paths["split"])
    if not paths["scores"].exists():
        chunks = [layout.chunk(dataset, model, cls, c) for c in range(pl.n_chunks(cfg, dataset))]
        for c, chunk in enumerate(chunks):
            pl.score_chunk(cfg, dataset, model, c, paths["split"], None, paths["features"], chunk)
        pl.merge_scores(cfg, dataset, model, paths["split"], chunks, paths["scores"])
    return paths


def _select_and_evaluate(
    cfg: dict[str, Any], dataset: str, model: str, method: str, paths: dict[str, Path], out_dir: Path
) -> list[dict[str, Any]]:
    subsets = pl.select_subsets(
        cfg, dataset, model, method, paths["split"], paths["scores"], paths["features"], out_dir / "subsets"
    )
    evals = [str(out_dir / "eval" / p.name) for p in subsets]
    pl.evaluate_subsets(cfg, dataset, model, paths["split"], None, paths["features"], [str(p) for p in subsets], evals)
    return [read_result(e) for e in evals]


def fitness_ablation(
    config_paths: dict[str, str], fitnesses: tuple[str, ...] = FITNESSES, log: Any = print
) -> pd.DataFrame:
    """One row per (val, method, M, seed, class): test AUROC. ``config_paths``: val name -> config."""
    rows = []
    for val, path in config_paths.items():
        base = config_module.load(path)
        dataset, model = base["runs"][0]["dataset"], base["runs"][0]["model"]
        for cls in pl.classes(base, dataset):
            paths = _study_inputs(base, dataset, model, cls)
            root = Path(Layout(base["results"]).ablation(dataset, model, cls))
            runs = [("greedy", "greedy", base), ("random", "random", base)]
            for fitness in fitnesses:
                cfg = copy.deepcopy(base)
                cfg["selection"].setdefault("evolutionary", {})["fitness"] = fitness  # no block: defaults
                runs.append((f"evolutionary ({fitness})", "evolutionary", cfg))
            for label, method, cfg in runs:
                out = root / label.replace(" ", "_").replace("(", "").replace(")", "")
                for r in _select_and_evaluate(cfg, dataset, model, method, paths, out):
                    rows.append(
                        {
                            "val": val,
                            "method": label,
                            "M": r["M"],
                            "seed": r["seed"],
                            "class": cls,
                            "test_auroc": r["test_auroc"],
                        }
                    )
            log(f"{val}: class {cls} done")
    return pd.DataFrame(rows)


def ablation_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean test AUROC (%) over classes per (val, method) x M; random: mean ± std over seeds."""
    per_seed = results.groupby(["val", "method", "M", "seed"], sort=False).test_auroc.mean() * 100
    cells = {}
    for (val, method, M), values in per_seed.groupby(level=["val", "method", "M"], sort=False):
        text = f"{values.mean():.2f}" + (f" ± {values.std(ddof=0):.2f}" if len(values) > 1 else "")
        cells.setdefault((val, method), {})[f"M = {M}"] = text
    table = pd.DataFrame.from_dict(cells, orient="index")
    table.index = [f"{val} val: {method}" for val, method in table.index]
    return table


def main(argv: list[str] | None = None) -> None:
    """``python -m protolib.ablation``: run the ablation, print the table, write it (.md, .csv)."""

    parser = argparse.ArgumentParser(prog="python -m protolib.ablation", description=__doc__.splitlines()[0])
    parser.add_argument("--literal", default="config/fashion_mnist.yaml", help="study config, the paper's val set")
    parser.add_argument(
        "--balanced", default="config/fashion_mnist_balanced_val.yaml", help="the same study with a balanced val set"
    )
    parser.add_argument("--fitness", nargs="+", default=list(FITNESSES), choices=FITNESSES)
    parser.add_argument("--out", default="results/fitness_ablation.md")
    args = parser.parse_args(argv)
    results = fitness_ablation(
        {"balanced": args.balanced, "literal": args.literal},
        tuple(args.fitness),
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    table = ablation_table(results).to_markdown()
    io.write_text(args.out, table + "\n")
    io.write_text(Path(args.out).with_suffix(".csv"), results.to_csv(index=False))
    print(table)


if __name__ == "__main__":
    main()
