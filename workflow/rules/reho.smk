# Per scan: nuisance regression + band-pass, then ReHo (Kendall's W). Each runs a nipype node.
MEASURES.append("reho")
REHO_BATCHES = batches_of("reho", SCANS)  # {} unless batch_size > 0 (rules in batch.smk)
DENOISE_OPTIONS = {k: v for k, v in config["denoise"].items() if k != "keep_denoised"}
REHO_OPTIONS = {k: config["reho"][k] for k in ("neighbourhood", "tie_correction", "smoothing_fwhm")}


rule denoise:
    input:
        bold=lambda w: scan_of(w).bold,
        mask=lambda w: scan_of(w).mask,
        confounds=lambda w: scan_of(w).confounds,
    output:
        bold=out_path("denoised", "bold", ".nii.gz") if config["denoise"]["keep_denoised"] else temp(out_path("denoised", "bold", ".nii.gz")),
        json=out_path("denoised", "bold", ".json"),
    params:
        participant_id=lambda w: scan_of(w).participant_id,
        options=DENOISE_OPTIONS,
        work_dir=work_dir("denoise"),
        on_error=config["on_subject_error"],
    log:
        log_path("denoise"),
    resources:
        mem_mb=scan_mem_mb(1500, 12),
        runtime=scan_runtime(10, 0.1),
    group:
        "subject"
    conda:
        os.path.join(ENVS, "reho.yaml")
    script:
        "../../scripts/denoise.py"


rule reho:
    input:
        bold=rules.denoise.output.bold,
        bold_json=rules.denoise.output.json,
        mask=lambda w: scan_of(w).mask,
    output:
        reho=out_path("reho", "bold", ".nii.gz"),
        mreho=out_path("mreho", "bold", ".nii.gz"),
        zreho=out_path("zreho", "bold", ".nii.gz"),
        mask=out_path("reho", "mask", ".nii.gz"),
        json=out_path("reho", "bold", ".json"),
    params:
        participant_id=lambda w: scan_of(w).participant_id,
        options=REHO_OPTIONS,
        work_dir=work_dir("reho"),
        on_error=config["on_subject_error"],
    threads: REGISTRY["reho"].threads
    log:
        log_path("reho"),
    resources:
        mem_mb=scan_mem_mb(1500, 6),
        runtime=scan_runtime(10, 0.05),
    group:
        "subject"
    conda:
        os.path.join(ENVS, "reho.yaml")
    script:
        "../../scripts/reho.py"
