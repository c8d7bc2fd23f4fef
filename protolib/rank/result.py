"""What ``protolib rank`` returns, and the summary the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class RankResult:
    table: pd.DataFrame  # one row per readable image, most prototypical first
    coreset: list[str]  # file names, in component order
    atypical: list[str]  # file names, most atypical first
    skipped: list[tuple[str, str]]  # (file, reason) of unreadable images
    outputs: dict[str, Path]  # what -> file
    settings: dict[str, Any]
    subsets: dict[str, list[str]] = field(default_factory=dict)  # greedy / evolutionary -> file names
    val_auroc: dict[str, float] = field(default_factory=dict)  # method -> val AUROC
    notes: list[str] = field(default_factory=list)  # ties the distances do not separate (summary.json)

    def summary(self) -> str:
        s = self.settings
        lines = [
            f"ranked {len(self.table)} images of {s['images_dir']} ({s['mode']}, {s['image_size']}x{s['image_size']}, "
            f"model {s['model']}, features {s['backbone']}"
            + (f" [weights: {s['weights']}]" if s["backbone"] != "pixels" else "")
            + ")",
        ]
        for name, reason in self.skipped:
            lines.append(f"  skipped unreadable {name}: {reason}")
        rows = self._output_rows()
        width = max(len(label) for label, _ in rows)
        lines += [f"  {label:<{width}}  {where}" for label, where in rows]
        if self.subsets:
            lines.append("  (greedy and evolutionary were chosen on this val set: their val AUROC is optimistic)")
        return "\n".join(lines)

    def _output_rows(self) -> list[tuple[str, str]]:
        """(what, where) for every output file."""
        out = self.outputs
        rows = [
            ("every image, most prototypical first", f"{out['ranking']}"),
            (
                f"core-set (typical), M = {len(self.coreset)}"
                + (f" (val AUROC {self.val_auroc['typical']:.4f})" if "typical" in self.val_auroc else ""),
                f"{out['coreset_csv']} (+ .json)",
            ),
            (f"most atypical (long tail, corrupted), {len(self.atypical)}", f"{out['atypical']}"),
        ]
        for method, files in self.subsets.items():
            rows.append(
                (
                    f"{method}, M = {len(files)} (val AUROC {self.val_auroc[method]:.4f})",
                    f"{out[method + '_csv']} (+ .json)",
                )
            )
        if self.val_auroc:
            rows.append(
                (
                    f"val AUROC per subset; all {len(self.table)} images: {self.val_auroc['all']:.4f}",
                    f"{out['val_auroc']}",
                )
            )
        if "contact_sheet" in out:
            rows.append(("contact sheet", f"{out['contact_sheet']}"))
        rows.append(("settings, counts, skipped files", f"{out['summary']}"))
        return rows
