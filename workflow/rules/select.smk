# Subsets: one job per (dataset, model, class, method) writes one file per (M, seed).
# One rule per configured method, because each method has its own number of seeds.
# Every select_<method> rule is in the `selection` group with merge_scores (one SLURM submission
# per class; groups are ignored by local runs), so a new method needs no profile edit.

for _method in METHODS:

    rule:
        name:
            f"select_{_method}"
        input:
            split=split_path(),
            scores=scores_file(),
            features=lambda w: features_path(w.dataset, w.model),
        output:
            subset_files(_method),
        log:
            log_file(f"select_{_method}", "dataset", "model", "cls"),
        benchmark:
            benchmark_file(f"select_{_method}", "dataset", "model", "cls")
        group:
            "selection"
        conda:
            "../../envs/protolib.yaml"
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
        params:
            method=_method,
            settings=lambda w, method=_method: pl.selection_provenance(
                config, w.dataset, w.model, method
            ),
        script:
            "../../scripts/select.py"
