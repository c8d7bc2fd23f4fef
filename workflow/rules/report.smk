# Tables and figures, made from the evaluation files alone; each is a target by name:
#   snakemake --cores 2 table1 | tables | fig2

FIG2_RUNS = (
    [(config["report"]["fig2"].get("dataset", RUNS[0][0]), config["report"]["fig2"].get("model", RUNS[0][1]))]
    if config["report"].get("fig2")
    else RUNS
)


rule evaluation_table:
    input:
        [f for dataset, model in RUNS for f in all_eval_files(dataset, model)],
    output:
        f"{R}/evaluation.csv",
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/collect.py"


rule table1:
    input:
        f"{R}/evaluation.csv",
    output:
        multiext(f"{R}/tables/table1", ".csv", ".md", ".tex", ".json"),
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/table1.py"


rule tables:
    input:
        f"{R}/evaluation.csv",
    output:
        [
            f"{R}/tables/per_class_{dataset}_{model}{ext}"
            for dataset, model in RUNS
            for ext in (".csv", ".md", ".tex", ".json")
        ],
    params:
        runs=RUNS,
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/per_class_tables.py"


rule fig2:
    input:
        f"{R}/evaluation.csv",
    output:
        [f"{R}/figures/fig2_{dataset}_{model}{ext}" for dataset, model in FIG2_RUNS for ext in (".png", ".pdf")],
    params:
        runs=FIG2_RUNS,
        methods=config["report"].get("fig2", {}).get("methods"),
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/fig2.py"
