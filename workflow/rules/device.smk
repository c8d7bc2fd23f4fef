# The GPU pre-flight: one short job, with the GPU rules' resources, that resolves the device
# as their jobs do (protolib.device); every GPU rule and `prepare` take its record as input
# (device_checked()), so a GPU its torch cannot use fails this job once, and no GPU rule's
# job (nor a new study's first job) is submitted. `retries: 0` beats the profile's retries (a rerun would find the same node
# software). The record is temporary: each invocation with GPU work checks again.
# None with `device: cpu`.


rule device_check:
    output:
        temp(LAYOUT.device_check),
    log:
        log_file("device_check"),
    retries: 0
    conda:
        GPU_ENV
    resources:
        **gpu_resources(),
        mem_mb=1000,
        runtime=10,
    params:
        settings={
            "device": config["device"],
            "gpu_model": config.get("gpu_model"),
        },
    script:
        "../../scripts/device_check.py"
