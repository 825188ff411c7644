# CBF: per ASL series (or ready perfusion map) quantification on the BOLD's template grid (inputs:
# cbf_inputs.smk). Its parcellation and cohort tables (cbf absolute and/or rcbf normalised) are
# generated from the measure registry in measures.smk, as for every measure.
from rviflow.measures.cbf.quantify import cbf_options

CBF_OPTIONS = cbf_options(CBF)


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

