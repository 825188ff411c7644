# Per scan: regional means of the ReHo map in the atlas (default Desikan-Killiany + subcortex).


rule parcellate_reho:
    input:
        map=out_path(config["reho"]["parcel_map"], "bold", ".nii.gz"),
        map_json=rules.reho.output.json,
        valid=rules.reho.output.mask,
        atlas_image=ATLAS_IMAGE,
        atlas_labels=ATLAS_LABELS,
    output:
        tsv=out_path("reho", "parcels", ".tsv"),
        json=out_path("reho", "parcels", ".json"),
    params:
        participant_id=lambda w: scan_of(w).participant_id,
        session=lambda w: scan_of(w).session or "",
        work_dir=work_dir("parcellate"),
        on_error=config["on_subject_error"],
    log:
        log_path("parcellate_reho"),
    resources:
        mem_mb=scan_mem_mb(1500, 1),
        runtime=scan_runtime(10, 0),
    group:
        "subject"
    conda:
        os.path.join(ENVS, "reho.yaml")
    script:
        "../../scripts/parcellate.py"


# the cohort's ReHo table: per-scan parcel rows + step QC (the files, or in batch mode the batch
# records, are the inputs; the script reads the per-scan files listed in params.files)
REHO_FILES = dict(tsv=per_scan("reho", "parcels", ".tsv"), json=per_scan("reho", "parcels", ".json"),
                  denoise_json=per_scan("denoised", "bold", ".json"), reho_json=per_scan("reho", "bold", ".json"))


rule collect_reho:
    input:
        **per_scan_inputs("reho", REHO_BATCHES, **REHO_FILES),
    output:
        table=group_path("parcels_reho.tsv"),
        scans=group_path("parcels_reho_scans.tsv"),
        qc=group_path("qc/steps_reho.tsv"),
    params:
        files=REHO_FILES,
        combine_runs=config["combine_runs"],
    log:
        os.path.join(OUT, "logs", "collect_reho.log"),
    resources:
        mem_mb=cohort_mem_mb(2000, 0.1),
        runtime=cohort_runtime(15, 0.005),
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/collect_parcels.py"
