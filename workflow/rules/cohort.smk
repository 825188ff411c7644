# Cohort: stack the per-scan parcel rows, QC table, covariate-adjusted effect sizes of every
# measure in MEASURES (each stage makes group/parcels_<m>.tsv and group/qc/steps_<m>.tsv).


rule collect_reho:
    input:
        tsv=per_scan("reho", "parcels", ".tsv"),
        json=per_scan("reho", "parcels", ".json"),
        denoise_json=per_scan("denoised", "bold", ".json"),
        reho_json=per_scan("reho", "bold", ".json"),
    output:
        table=group_path("parcels_reho.tsv"),
        qc=group_path("qc/steps_reho.tsv"),
    log:
        os.path.join(OUT, "logs", "collect_reho.log"),
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/collect_parcels.py"


rule effect_sizes:
    input:
        tables=[group_path(f"parcels_{m}.tsv") for m in MEASURES],
        participants=PARTICIPANTS_TSV,
    output:
        effects=group_path("effect_sizes.tsv"),
        qc=group_path("qc/cohort.tsv"),
    params:
        measures=MEASURES,
        groups=GROUPS,
        covariates=config["covariates"],
        site_column=config["site_column"],
        min_per_group=config["min_per_group"],
    log:
        os.path.join(OUT, "logs", "effect_sizes.log"),
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/effect_sizes.py"


rule qc_table:
    input:
        steps=[group_path(f"qc/steps_{m}.tsv") for m in MEASURES],
        cohort=group_path("qc/cohort.tsv"),
    output:
        group_path("qc.tsv"),
    params:
        discovery=DISCOVERY_QC,
    log:
        os.path.join(OUT, "logs", "qc_table.log"),
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/qc_table.py"


rule dataset_description:
    output:
        os.path.join(OUT, "dataset_description.json"),
    params:
        sources=[config["bids_dir"], config["fmriprep_dir"]],
    log:
        os.path.join(OUT, "logs", "dataset_description.log"),
    localrule: True
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/dataset_description.py"
