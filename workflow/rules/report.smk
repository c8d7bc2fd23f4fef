# Tables and figures, made from the study's files alone; each is a target by name:
#   snakemake --cores 2 table1 | table2 | tables | fig1 | fig2 | ... | fig7
# After a run, `snakemake --report report.html` collects every table and figure, each with its
# caption (workflow/report/*.rst), into one self-contained HTML file.
# What each shows (dataset / model / class / methods / transfer entries) is planned once by
# protolib.figures.plan (config report.<figN>; the paper's choice when that dataset is run, else
# the first run and its first class); the rules below only name files.
from protolib.figures.plan import plan_report


report: "../report/workflow.rst"


PLAN = plan_report(config, TRANSFER)
CHOICE = PLAN.choice


rule evaluation_table:
    input:
        [f for dataset, model in RUNS for f in all_eval_files(dataset, model)],
    output:
        EVALUATION_CSV,
    log:
        log_file("evaluation_table"),
    benchmark:
        benchmark_file("evaluation_table")
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/report_job.py"


rule table1:
    input:
        EVALUATION_CSV,
    output:
        table_files(
            "table1",
            "table1",
            "Table 1: summary",
            "Table 1",
            ", ".join(f"{d}/{m}" for d, m in RUNS),
        ),
    log:
        log_file("table1"),
    benchmark:
        benchmark_file("table1")
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/report_job.py"


rule table2:
    input:
        evaluation=EVALUATION_CSV,
        transfer=TRANSFER_CSV if PLAN.table2_entries else [],
    output:
        table_files(
            "table2",
            "table2",
            "Table 2: one run with transfer",
            "Table 2",
            f"{CHOICE['table2'].dataset}/{CHOICE['table2'].model}",
        ),
    log:
        log_file("table2"),
    benchmark:
        benchmark_file("table2")
    conda:
        "../../envs/protolib.yaml"
    params:
        dataset=CHOICE["table2"].dataset,
        model=CHOICE["table2"].model,
        entries=PLAN.table2_entries,
    script:
        "../../scripts/report_job.py"


rule tables:
    input:
        EVALUATION_CSV,
    output:
        [
            f
            for dataset, model in RUNS
            for f in table_files(
                f"per_class_{dataset}_{model}",
                "tables",
                "Tables 3-7: per class",
                "per class",
                f"{dataset}/{model}",
            )
        ],
    log:
        log_file("tables"),
    benchmark:
        benchmark_file("tables")
    conda:
        "../../envs/protolib.yaml"
    params:
        runs=RUNS,
    script:
        "../../scripts/report_job.py"


rule fig1:
    input:
        EVALUATION_CSV,
    output:
        figure_files("fig1", CHOICE["fig1"].label(), "Fig. 1: one class"),
    log:
        log_file("fig1"),
    benchmark:
        benchmark_file("fig1")
    conda:
        "../../envs/protolib.yaml"
    params:
        choice=CHOICE["fig1"].as_dict(),
    script:
        "../../scripts/report_job.py"


rule fig2:
    input:
        EVALUATION_CSV,
    output:
        fig2_files(PLAN.fig2_runs),
    log:
        log_file("fig2"),
    benchmark:
        benchmark_file("fig2")
    conda:
        "../../envs/protolib.yaml"
    params:
        runs=PLAN.fig2_runs,
        methods=config["report"].get("fig2", {}).get("methods"),
    script:
        "../../scripts/report_job.py"


rule fig3:
    input:
        data=data_path(CHOICE["fig3"].dataset),
        split=split_path(CHOICE["fig3"].dataset, CHOICE["fig3"].cls),
        subsets=[
            subset_file(
                m,
                PLAN.fig3_M,
                0,
                CHOICE["fig3"].dataset,
                CHOICE["fig3"].model,
                CHOICE["fig3"].cls,
            )
            for m in PLAN.fig3_methods
        ],
    output:
        figure_files("fig3", CHOICE["fig3"].label(), "Fig. 3: selected images"),
    log:
        log_file("fig3"),
    benchmark:
        benchmark_file("fig3")
    conda:
        "../../envs/protolib.yaml"
    params:
        choice=CHOICE["fig3"].as_dict(),
        methods=PLAN.fig3_methods,
    script:
        "../../scripts/report_job.py"


rule fig4:
    input:
        data=data_path(CHOICE["fig4"].dataset),
        scores=[
            scores_file(CHOICE["fig4"].dataset, CHOICE["fig4"].model, c)
            for c in CHOICE["fig4"].classes
        ],
    output:
        figure_files(
            "fig4", CHOICE["fig4"].label(), "Fig. 4: best and worst single samples"
        ),
    log:
        log_file("fig4"),
    benchmark:
        benchmark_file("fig4")
    conda:
        "../../envs/protolib.yaml"
    params:
        choice=CHOICE["fig4"].as_dict(),
    script:
        "../../scripts/report_job.py"


rule fig5:
    input:
        data=data_path(CHOICE["fig5"].dataset),
        scores=scores_file(
            CHOICE["fig5"].dataset, CHOICE["fig5"].model, CHOICE["fig5"].cls
        ),
        subsets=(
            subset_files(
                "evolutionary",
                CHOICE["fig5"].dataset,
                CHOICE["fig5"].model,
                CHOICE["fig5"].cls,
            )
            if PLAN.fig5_evolutionary
            else []
        ),
    output:
        figure_files("fig5", CHOICE["fig5"].label(), "Fig. 5: evolutionary ranking"),
    log:
        log_file("fig5"),
    benchmark:
        benchmark_file("fig5")
    conda:
        "../../envs/protolib.yaml"
    params:
        choice=CHOICE["fig5"].as_dict(),
    script:
        "../../scripts/report_job.py"


rule fig6:
    input:
        TRANSFER_CSV if PLAN.fig6_entries else [],
    output:
        figure_files(
            "fig6",
            ", ".join(e["name"] for e in PLAN.fig6_entries)
            or "no transfer experiments configured",
            "Fig. 6: transfer",
        ),
    log:
        log_file("fig6"),
    benchmark:
        benchmark_file("fig6")
    conda:
        "../../envs/protolib.yaml"
    params:
        entries=PLAN.fig6_entries,
    script:
        "../../scripts/report_job.py"


rule fig7:
    input:
        data=data_path(CHOICE["fig7"].dataset),
        split=split_path(CHOICE["fig7"].dataset, CHOICE["fig7"].cls),
        features=features_path(CHOICE["fig7"].dataset, CHOICE["fig7"].model),
    output:
        figure_files("fig7", CHOICE["fig7"].label(), "Fig. 7: long tail"),
    log:
        log_file("fig7"),
    benchmark:
        benchmark_file("fig7")
    conda:
        "../../envs/protolib.yaml"
    params:
        choice=CHOICE["fig7"].as_dict(),
    script:
        "../../scripts/report_job.py"
