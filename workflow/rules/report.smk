# Tables and figures, made from the study's files alone; each is a target by name:
#   snakemake --cores 2 table1 | table2 | tables | fig1 | fig2 | ... | fig7
# After a run, `snakemake --report report.html` collects every table and figure, each with its
# caption (workflow/report/*.rst), into one self-contained HTML file.
# One rule per registered table and figure (protolib.figures.registry; plugins add their own),
# as select.smk has one per selection method. What each reads and shows (dataset / model / class
# / methods / transfer entries) is planned once by protolib.figures.plan; the rules only name files.
from protolib.figures.plan import plan_report


report: "../report/workflow.rst"


rule evaluation_table:
    input:
        [f for dataset, model in RUNS for f in all_eval_files(dataset, model)],
    output:
        with_description(EVALUATION_CSV),
    log:
        log_file("evaluation_table"),
    benchmark:
        benchmark_file("evaluation_table")
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/report_job.py"


for _item in plan_report(config, TRANSFER, REPORT_PATHS):

    rule:
        name:
            _item.name
        input:
            **_item.inputs,
        output:
            report_files(_item.figure, _item.outputs),
        log:
            log_file(_item.name),
        benchmark:
            benchmark_file(_item.name)
        conda:
            "../../envs/protolib.yaml"
        params:
            **_item.params,
        script:
            "../../scripts/report_job.py"
