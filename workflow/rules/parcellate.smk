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
        work_dir=lambda w: work_dir("parcellate", w.scan),
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
