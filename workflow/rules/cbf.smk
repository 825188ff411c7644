# CBF: per ASL series (or ready perfusion map) quantification on the BOLD's template grid, then
# parcellation and collection exactly as for ReHo. Measures: cbf (absolute) and/or rcbf
# (normalised), registered in MEASURES when there is something to measure.
include: "cbf_inputs.smk"
CBF_OPTIONS = dict(m0_scale=CBF["m0_scale"], m0_fwhm=CBF["m0_fwhm"], t1_blood=CBF["t1_blood"] or None,
                   t1_tissue=CBF["t1_tissue"], m0_tr_limit=CBF["m0_tr_limit"],
                   outlier_rejection=CBF["outlier_rejection"], outlier_threshold=CBF["outlier_threshold"],
                   att_range=[CBF["att_min"], CBF["att_max"]], att_fwhm=CBF["att_fwhm"], cbf_max=CBF["cbf_max"],
                   labeling_efficiency=CBF["labeling_efficiency"] or None,
                   bs_pulse_efficiency=CBF["bs_pulse_efficiency"],
                   bs_with_labeling_efficiency=CBF["bs_with_labeling_efficiency"])


rule cbf:
    input:
        unpack(lambda w: {k: v for k, v in dict(t1w=cbf_of(w).t1w, xfm=cbf_of(w).xfm,
                                                reference_mask=CBF["reference_mask"]).items() if v}),
        source=lambda w: cbf_of(w).source_file,
        reference=lambda w: cbf_of(w).reference,
        atlas_image=ATLAS_IMAGE,
    output:
        cbf=cbf_path("mean", "cbf", ".nii.gz"),
        rel=cbf_path("rel", "cbf", ".nii.gz"),
        mask=cbf_path("cbf", "mask", ".nii.gz"),
        json=cbf_path("mean", "cbf", ".json"),
    params:
        att=lambda w: cbf_path("kinetic", "att", ".nii.gz", w.aslscan),
        participant_id=lambda w: cbf_of(w).participant_id,
        source=CBF["source"],
        in_template=lambda w: cbf_of(w).in_template,
        options=CBF_OPTIONS,
        reference=CBF["reference"],
        work_dir=work_dir("cbf", "{aslscan}"),
        on_error=config["on_subject_error"],
    log:
        log_path("cbf", "{aslscan}"),
    resources:
        mem_mb=scan_mem_mb(2000, 10),
        runtime=scan_runtime(15, 0.2),
    group:
        "subject"
    conda:
        os.path.join(ENVS, "cbf.yaml")
    script:
        "../../scripts/cbf.py"


for _measure, _desc in (("cbf", "mean"), ("rcbf", "rel")):

    rule:
        name:
            f"parcellate_{_measure}"
        input:
            map=cbf_path(_desc, "cbf", ".nii.gz"),
            map_json=rules.cbf.output.json,
            valid=rules.cbf.output.mask,
            brain=lambda w: cbf_of(w).reference,
            atlas_image=ATLAS_IMAGE,
            atlas_labels=ATLAS_LABELS,
        output:
            tsv=cbf_path(_measure, "parcels", ".tsv"),
            json=cbf_path(_measure, "parcels", ".json"),
        params:
            min_coverage=CBF["min_coverage"],
            participant_id=lambda w: cbf_of(w).participant_id,
            session=lambda w: cbf_of(w).session or "",
            work_dir=work_dir("parcellate", "{aslscan}"),
            on_error=config["on_subject_error"],
        log:
            log_path(f"parcellate_{_measure}", "{aslscan}"),
        resources:
            mem_mb=scan_mem_mb(1500, 1),
            runtime=scan_runtime(10, 0),
        group:
            "subject"
        conda:
            os.path.join(ENVS, "cbf.yaml")
        script:
            "../../scripts/parcellate.py"

    rule:
        name:
            f"collect_{_measure}"
        input:
            **per_scan_inputs("cbf", CBF_BATCHES, **cbf_files(_measure)),
        output:
            table=group_path(f"parcels_{_measure}.tsv"),
            qc=group_path(f"qc/steps_{_measure}.tsv"),
        params:
            files=cbf_files(_measure),
            parcellate_step=f"parcellate_{_measure}",
        log:
            os.path.join(OUT, "logs", f"collect_{_measure}.log"),
        conda:
            os.path.join(ENVS, "cohort.yaml")
        script:
            "../../scripts/collect_parcels.py"
