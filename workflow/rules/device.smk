# The GPU pre-flight: one short job, with the GPU rules' resources, that resolves the device
# as their jobs do (protolib.device); every GPU rule and `prepare` take its record as input
# (device_checked()), so a GPU its torch cannot use fails this job once, and no GPU rule's
# job (nor a new study's first job) is submitted. `retries: 0` beats the profile's retries (a
# retry would find the same node software). It runs while its record is missing (a new
# results folder, or after it failed), when `device` or `gpu_model` changed (params), and on
# request (`--forcerun device_check`); the record is kept: a temporary one, made again in each
# run, would make every GPU job rerun each time (Snakemake reruns the consumers of a file a
# running job makes unless the file is `ancient` and present). None with `device: cpu`.


rule device_check:
    output:
        LAYOUT.device_check,
    log:
        log_file("device_check"),
    retries: 0
    conda:
        GPU_ENV
    resources:
        **gpu_resources(),
        mem_mb=1000,
        runtime=gpu_runtime("device_check"),
    params:
        settings={
            "device": config["device"],
            "gpu_model": config.get("gpu_model"),
        },
    script:
        "../../scripts/device_check.py"
