# protolib: the study of "How Low Can You Go?" as a Snakemake workflow.
# The embedded default (config.yaml) runs offline in minutes; `--configfile config/X.yaml`
# replaces it. All logic lives in the protolib package; rules only name files.
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, workflow.basedir)
# Jobs import protolib from this checkout (set here, not required from the user).
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        [workflow.basedir, os.environ.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
)

from protolib import config as protolib_config
from protolib import device as device_check
from protolib import pipeline as pl
from protolib import run_lock
from protolib import slurm as slurm_check
from protolib.integrity import description_path
from protolib.layout import Layout
from protolib.models.backbones import feature_key
from protolib.models.base import detector_uses_features

if not workflow.overwrite_configfiles:
    # the embedded default, read here first: Snakemake's own message would not name the file
    try:
        protolib_config.check_mapping(
            protolib_config.read_yaml("config.yaml"), "config.yaml"
        )
    except protolib_config.ConfigError as err:
        sys.exit(f"error: {err}")

    configfile: "config.yaml"


# Validated (and defaults filled in) before any job runs, by the same validator as
# `protolib validate-config`; a bad value stops here with one message naming the key, no traceback.
try:
    protolib_config.validate_workflow(
        config,
        list(map(str, workflow.overwrite_configfiles)) or ["config.yaml"],
        dict(workflow.config_settings.config),
    )
except protolib_config.ConfigError as err:
    sys.exit(f"error: {err}")

R = config["results"]

# A second run while another holds the results folder: say so (Snakemake would first report the
# other run's outputs as incomplete and advise --rerun-incomplete). Not in job processes, dry
# runs, --unlock or --nolock (read from the command line: its settings are not known yet).
if workflow.exec_mode.name == "DEFAULT" and run_lock.locking_run(sys.argv[1:]):
    _lock = run_lock.lock_holding(R)
    if _lock is not None:
        sys.exit(f"error: {run_lock.held_message(R, _lock)}")
    # a run from another working directory on the same results folder
    _held = run_lock.hold(R)
    if _held is not None:
        sys.exit(f"error: {_held}")
M_VALUES = config["selection"]["M"]
METHODS = config["selection"]["methods"]
RUNS = [(r["dataset"], r["model"]) for r in config["runs"]]
CLASSES = {dataset: pl.classes(config, dataset) for dataset, _ in RUNS}


include: "workflow/rules/common.smk"
include: "workflow/rules/device.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/scores.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        # every table and figure: the rules that run the report job script (report.smk, transfer;
        # transfer only with entries: without, its table would be a header and nothing reads it)
        # (plain paths: the report flags stay with the rules that make the files)
        [
            str(f)
            for r in workflow.rules
            if str(r.script or "").endswith("report_job.py")
            and (r.name != "transfer" or TRANSFER)
            for f in r.output
        ],


onstart:
    # local executor: `device: cuda` on a machine without a usable GPU stops here, before any job
    try:
        device_check.check_workflow(workflow, config["device"])
    except device_check.DeviceError as err:
        sys.exit(f"error: {err}")
    # slurm executor: stop here if a job asks for more than any node has (it would pend forever)
    slurm_check.check_workflow(workflow)


onsuccess:
    print(
        f"\nprotolib: done. Summary table: {R}/tables/table1.md (also .csv, .tex, .html); "
        f"Table 2 and per-class tables: {R}/tables/; figures 1-7: {R}/figures/ (PNG, PDF). "
        "Browsable report with captions: snakemake --report report.html\n"
    )
