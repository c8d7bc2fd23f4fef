"""The results folder's layout: every path a stage reads or writes, named here once.

``Layout(results)`` gives each file's path from its values; called without them a method gives
the Snakemake pattern, with wildcards (``{dataset}``, ``{model}``, ``{cls}``, ...), that the rules
match. ``workflow/rules/common.smk`` names every rule's files through it, and the ablation and
the report read the study's files through it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from protolib.pipeline import FULL, subset_name

Value = str | int


@dataclass(frozen=True)
class Layout:
    """Paths under the results folder ``results`` (as the config spells it)."""

    results: str

    # ------------------------------------------------------------------------- gathered files
    @property
    def evaluation(self) -> str:
        """Every evaluation file of the study, one row each."""
        return f"{self.results}/evaluation.csv"

    @property
    def transfer_evaluation(self) -> str:
        return f"{self.results}/transfer/evaluation.csv"

    @property
    def device_check(self) -> str:
        """The GPU pre-flight's record (rule ``device_check``; a temporary file)."""
        return f"{self.results}/device_check.json"

    @property
    def figures(self) -> str:
        return f"{self.results}/figures"

    @property
    def tables(self) -> str:
        return f"{self.results}/tables"

    # ------------------------------------------------------------------------- logs, benchmarks
    @property
    def logs(self) -> str:
        """Every job's log, one folder per rule."""
        return f"{self.results}/logs"

    def log(self, rule: str, *wildcards: str) -> str:
        """A job's ``log:``, ``<results>/logs/<rule>/<wildcards joined by />.log``."""
        return f"{self.logs}/{_job_stem(rule, wildcards)}.log"

    def benchmark(self, rule: str, *wildcards: str) -> str:
        """A job's ``benchmark:`` (time and memory), ``<results>/benchmarks/<rule>/....tsv``."""
        return f"{self.results}/benchmarks/{_job_stem(rule, wildcards)}.tsv"

    # ------------------------------------------------------------------------- data
    def data(self, dataset: Value = "{dataset}") -> str:
        return f"{self.results}/data/{dataset}.npz"

    def split(self, dataset: Value = "{dataset}", cls: Value = "{cls}") -> str:
        return f"{self.results}/splits/{dataset}/{cls}.json"

    def feature_files(self, dataset: Value = "{dataset}", fkey: Value = "{fkey}") -> list[str]:
        """The feature cache (.npy) and its description (.json)."""
        return [f"{self.results}/features/{dataset}/{fkey}.npy", f"{self.results}/features/{dataset}/{fkey}.json"]

    # ------------------------------------------------------------------------- scores
    def chunk(
        self, dataset: Value = "{dataset}", model: Value = "{model}", cls: Value = "{cls}", chunk: Value = "{chunk}"
    ) -> str:
        return f"{self.results}/scores/{dataset}/{model}/{cls}/chunk{chunk}.npz"

    def scores(self, dataset: Value = "{dataset}", model: Value = "{model}", cls: Value = "{cls}") -> str:
        return f"{self.results}/scores/{dataset}/{model}/{cls}/matrix.npz"

    # ------------------------------------------------------------------------- subsets, evaluation
    def subset(
        self,
        method: str,
        M: int,
        seed: int,
        dataset: Value = "{dataset}",
        model: Value = "{model}",
        cls: Value = "{cls}",
    ) -> str:
        return f"{self.results}/subsets/{dataset}/{model}/{cls}/{method}/{subset_name(M, seed)}.json"

    def evaluation_file(
        self,
        method: str,
        M: int,
        seed: int,
        dataset: Value = "{dataset}",
        model: Value = "{model}",
        cls: Value = "{cls}",
    ) -> str:
        return f"{self.results}/eval/{dataset}/{model}/{cls}/{method}/{subset_name(M, seed)}.json"

    def evaluation_full(self, dataset: Value = "{dataset}", model: Value = "{model}", cls: Value = "{cls}") -> str:
        """The detector trained on the whole training set (the 100 % row)."""
        return f"{self.results}/eval/{dataset}/{model}/{cls}/{FULL}.json"

    # ------------------------------------------------------------------------- transfer
    def transfer(self, name: str, method: str, M: int, seed: int, cls: Value = "{cls}") -> str:
        return f"{self.results}/transfer/{name}/{cls}/{method}/{subset_name(M, seed)}.json"

    def transfer_full(self, name: str, cls: Value = "{cls}") -> str:
        return f"{self.results}/transfer/{name}/{cls}/{FULL}.json"

    # ------------------------------------------------------------------------- the Eq. 3 ablation
    def ablation(self, dataset: Value, model: Value, cls: Value) -> str:
        """The folder of one class's ablation runs (subsets and their evaluations)."""
        return f"{self.results}/ablation/{dataset}/{model}/{cls}"


def _job_stem(rule: str, wildcards: tuple[str, ...]) -> str:
    return os.path.join(rule, *(f"{{{w}}}" for w in wildcards))


def top_level_names() -> frozenset[str]:
    """The names a study's files and folders have directly under its results folder (a
    folder of another name there, such as a second study's ``results/fashion_mnist``, is not
    this study's)."""
    layout = Layout("R")
    paths = [
        layout.evaluation,
        layout.evaluation.removesuffix(".csv") + ".json",  # its description (protolib.integrity)
        layout.transfer_evaluation,
        layout.device_check,
        layout.figures,
        layout.tables,
        layout.logs,
        layout.benchmark("rule"),
        layout.data(),
        layout.split(),
        *layout.feature_files(),
        layout.scores(),
        layout.subset("m", 1, 0),
        layout.evaluation_file("m", 1, 0),
        layout.transfer_full("n"),
        layout.ablation("d", "m", "c"),
    ]
    return frozenset(p.split("/")[1] for p in paths)
