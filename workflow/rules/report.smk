# Tables and figures, made from the study's files alone; each is a target by name:
#   snakemake --cores 2 table1 | table2 | tables | fig1 | fig2 | ... | fig7
# After a run, `snakemake --report report.html` collects every table and figure, each with its
# caption (workflow/report/*.rst), into one self-contained HTML file.
# Which dataset / model / class a figure shows: config report.<figN> (protolib.figures.choices:
# the paper's choice when that dataset is run, else the first run and its first class).
from protolib.figures.choices import fig2_runs, figure_choice, subset_size


report: "../report/workflow.rst"


FIG = f"{R}/figures"
TAB = f"{R}/tables"
CHOICE = {_f: figure_choice(config, _f) for _f in ("fig1", "fig3", "fig4", "fig5", "fig7", "table2")}

FIG2_RUNS = fig2_runs(config)


def _methods_for(figure, wanted, fallback):
    # report.<figure>.methods are checked by protolib.config (the one validator)
    chosen = [m for m in (wanted or fallback) if m in METHODS]
    return chosen or [m for m in METHODS if m != "random"][:2] or METHODS[:1]


# Fig. 3: the subsets of size 5 (else the largest M) of greedy and evolutionary (seed 0)
FIG3 = CHOICE["fig3"]
FIG3_METHODS = _methods_for("fig3", FIG3.methods, ["greedy", "evolutionary"])
FIG3_M = subset_size(M_VALUES)
# Fig. 5: the evolutionary subsets of every M (none when evolutionary is not run: the ranking is
# then by the single-image Eq. 3 fitness alone)
FIG5 = CHOICE["fig5"]
FIG5_SUBSETS = (
    subset_files(FIG5.dataset, FIG5.model, FIG5.cls, "evolutionary") if "evolutionary" in METHODS else []
)
# Fig. 6 / Table 2: transfer entries (workflow/rules/transfer.smk)
_fig6_source = config["report"].get("fig6", {}).get("source")  # a transfer name (checked by protolib.config)
FIG6_ENTRIES = [TRANSFER[_fig6_source]] if _fig6_source else list(TRANSFER.values())
TABLE2 = CHOICE["table2"]
TABLE2_ENTRIES = [
    e
    for e in TRANSFER.values()
    if (e["source"]["dataset"], e["source"]["model"]) == (TABLE2.dataset, TABLE2.model)
    or (e["target"]["dataset"], e["target"]["model"]) == (TABLE2.dataset, TABLE2.model)
]


def _report(path, caption, category, subcategory, result, shows):
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category=category,
        subcategory=subcategory,
        labels={"result": result, "shows": shows},
    )


def _figure(name, shows, subcategory):
    """PNG (in the report), PDF and the sidecar JSON of one figure."""
    return [
        _report(f"{FIG}/{name}.png", name, "Figures", subcategory, subcategory.split(":")[0], shows),
        f"{FIG}/{name}.pdf",
        f"{FIG}/{name}.json",
    ]


def _table(stem, caption, subcategory, result, shows):
    return [f"{stem}{ext}" for ext in (".csv", ".md", ".tex", ".json")] + [
        _report(f"{stem}.html", caption, "Tables", subcategory, result, shows)
    ]


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
        _table(f"{TAB}/table1", "table1", "Table 1: summary", "Table 1", ", ".join(f"{d}/{m}" for d, m in RUNS)),
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/table1.py"


rule table2:
    input:
        evaluation=f"{R}/evaluation.csv",
        transfer=f"{R}/transfer/evaluation.csv" if TABLE2_ENTRIES else [],
    output:
        _table(f"{TAB}/table2", "table2", "Table 2: one run with transfer", "Table 2", f"{TABLE2.dataset}/{TABLE2.model}"),
    params:
        dataset=TABLE2.dataset,
        model=TABLE2.model,
        entries=TABLE2_ENTRIES,
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/table2.py"


rule tables:
    input:
        f"{R}/evaluation.csv",
    output:
        [
            f
            for dataset, model in RUNS
            for f in _table(
                f"{TAB}/per_class_{dataset}_{model}", "tables", "Tables 3-7: per class", "per class", f"{dataset}/{model}"
            )
        ],
    params:
        runs=RUNS,
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/per_class_tables.py"


rule fig1:
    input:
        f"{R}/evaluation.csv",
    output:
        _figure("fig1", CHOICE["fig1"].label(), "Fig. 1: one class"),
    params:
        choice=CHOICE["fig1"].as_dict(),
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/fig1.py"


rule fig2:
    input:
        f"{R}/evaluation.csv",
    output:
        [
            f
            for dataset, model in FIG2_RUNS
            for f in (
                _report(f"{FIG}/fig2_{dataset}_{model}.png", "fig2", "Figures", "Fig. 2: every class", "Fig. 2", f"{dataset}/{model}"),
                f"{FIG}/fig2_{dataset}_{model}.pdf",
            )
        ],
    params:
        runs=FIG2_RUNS,
        methods=config["report"].get("fig2", {}).get("methods"),
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/fig2.py"


rule fig3:
    input:
        data=data_path(FIG3.dataset),
        split=split_path(FIG3.dataset, FIG3.cls),
        subsets=[
            f"{R}/subsets/{FIG3.dataset}/{FIG3.model}/{FIG3.cls}/{m}/{pl.subset_name(FIG3_M, 0)}.json"
            for m in FIG3_METHODS
        ],
    output:
        _figure("fig3", FIG3.label(), "Fig. 3: selected images"),
    params:
        choice=FIG3.as_dict(),
        methods=FIG3_METHODS,
        M=FIG3_M,
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/fig3.py"


rule fig4:
    input:
        data=data_path(CHOICE["fig4"].dataset),
        scores=[
            f"{R}/scores/{CHOICE['fig4'].dataset}/{CHOICE['fig4'].model}/{c}/matrix.npz" for c in CHOICE["fig4"].classes
        ],
    output:
        _figure("fig4", CHOICE["fig4"].label(), "Fig. 4: best and worst single samples"),
    params:
        choice=CHOICE["fig4"].as_dict(),
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/fig4.py"


rule fig5:
    input:
        data=data_path(FIG5.dataset),
        scores=f"{R}/scores/{FIG5.dataset}/{FIG5.model}/{FIG5.cls}/matrix.npz",
        subsets=FIG5_SUBSETS,
    output:
        _figure("fig5", FIG5.label(), "Fig. 5: evolutionary ranking"),
    params:
        choice=FIG5.as_dict(),
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/fig5.py"


rule fig6:
    input:
        f"{R}/transfer/evaluation.csv" if FIG6_ENTRIES else [],
    output:
        _figure(
            "fig6",
            ", ".join(e["name"] for e in FIG6_ENTRIES) or "no transfer experiments configured",
            "Fig. 6: transfer",
        ),
    params:
        entries=FIG6_ENTRIES,
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/fig6.py"


rule fig7:
    input:
        data=data_path(CHOICE["fig7"].dataset),
        split=split_path(CHOICE["fig7"].dataset, CHOICE["fig7"].cls),
        features=features_path(CHOICE["fig7"].dataset, CHOICE["fig7"].model),
    output:
        _figure("fig7", CHOICE["fig7"].label(), "Fig. 7: long tail"),
    params:
        choice=CHOICE["fig7"].as_dict(),
    conda:
        "../../envs/protolib.yaml"
    script:
        "../../scripts/fig7.py"
