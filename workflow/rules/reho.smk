# Per scan: ReHo (Kendall's W) of the denoised series (rule denoise, its parcellation and the
# cohort table: measures.smk, generated from rviflow.measures.registry). Runs a nipype node.
MEASURES.append("reho")
REHO_BATCHES = batches_of("reho", SCANS)  # {} unless batch_size > 0 (rules in batch.smk)
REHO_OPTIONS = {k: config["reho"][k] for k in ("neighbourhood", "tie_correction", "smoothing_fwhm")}
#: file extension of the BOLD series measures read: a temporary series (keep_denoised: false; the
#: regressed one always) is written uncompressed, gzip costing more than the rest of denoising
#: (benchmarks/results/bench_subject.md); batch jobs keep it in memory instead
SERIES_EXT = {"denoise": ".nii.gz" if config["denoise"]["keep_denoised"] else ".nii", "regress": ".nii"}
#: per-scan mode with a temporary denoised series: denoise -> ReHo (and the measures riding on its
#: series) -> parcels run as one job per scan, reho_scan (measures.smk), on one load of the BOLD
#: with the series held in memory (issue #19); keep_denoised: true keeps the separate jobs below
REHO_FUSED = not REHO_BATCHES and not config["denoise"]["keep_denoised"]


if not REHO_FUSED:

    rule reho:
        input:
            bold=out_path("denoised", "bold", SERIES_EXT["denoise"]),
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
