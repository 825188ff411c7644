# Per scan: ReHo (Kendall's W) of the denoised series (rule denoise, its parcellation and the
# cohort table: measures.smk, generated from rviflow.measures.registry). Runs a nipype node.
MEASURES.append("reho")
REHO_BATCHES = batches_of("reho", SCANS)  # {} unless batch_size > 0 (rules in batch.smk)
REHO_OPTIONS = {k: config["reho"][k] for k in ("neighbourhood", "tie_correction", "smoothing_fwhm")}


rule reho:
    input:
        bold=out_path("denoised", "bold", ".nii.gz"),
        bold_json=out_path("denoised", "bold", ".json"),
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
