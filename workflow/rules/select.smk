# Subsets: one job per (dataset, model, class, method) writes one file per (M, seed).
# One rule per configured method, because each method has its own number of seeds.

for _method in METHODS:

    rule:
        name:
            f"select_{_method}"
        input:
            split=lambda w: split_path(w.dataset, w.cls),
            scores=f"{R}/scores/{{dataset}}/{{model}}/{{cls}}/matrix.npz",
            features=lambda w: features_path(w.dataset, w.model),
        output:
            [
                f"{R}/subsets/{{dataset}}/{{model}}/{{cls}}/{_method}/{pl.subset_name(M, s)}.json"
                for M in M_VALUES
                for s in pl.seeds(config, _method)
            ],
        params:
            method=_method,
            selection_config=config["selection"].get(_method, {}),
            M=M_VALUES,
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
        conda:
            "../../envs/protolib.yaml"
        script:
            "../../scripts/select.py"
