# Cohort: stack the per-scan parcel rows, QC table, covariate-adjusted effect sizes of every
# measure in MEASURES (each stage makes group/parcels_<m>.tsv and group/qc/steps_<m>.tsv).
#
# Cohort statistics (config `cohort:`; rviflow.cohort.stats): cortical thickness and user tables
# join MEASURES here (stages that add a measure must be included before this file); ComBat per
# measure, effect sizes (+ hemisphere-averaged, functional/structural ratio), co-localisation,
# RVI (+ discrimination, symptoms, expected patterns, frozen references), prediction.


rule participants_table:  # the usable rows of participants.tsv (all checked at parse time, common.smk)
    input:
        PARTICIPANTS_RAW,
    output:
        PARTICIPANTS_TSV,
    params:
        groups=GROUPS,
        covariates=config["covariates"],
        site_column=config["site_column"],
        symptoms=COHORT["symptoms"],
    log:
        os.path.join(OUT, "logs", "participants_table.log"),
    localrule: True
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/participants_table.py"


rule effect_sizes:
    input:
        tables=[cohort_table(m) for m in MEASURES],
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
    resources:
        mem_mb=cohort_mem_mb(2000, 0.1),
        runtime=cohort_runtime(15, 0.005),
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
    resources:
        mem_mb=cohort_mem_mb(1000, 0.05),
        runtime=cohort_runtime(10, 0.001),
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/qc_table.py"


rule dataset_description:
    output:
        os.path.join(OUT, "dataset_description.json"),
    params:
        sources=[d for d in (config["bids_dir"], config["fmriprep_dir"]) if d],
    log:
        os.path.join(OUT, "logs", "dataset_description.log"),
    localrule: True
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/dataset_description.py"


if THICKNESS_SOURCE:

    rule thickness:
        input:
            participants=PARTICIPANTS_TSV,
            atlas_labels=ATLAS_LABELS,
        output:
            table=group_path("parcels_thickness.tsv"),
            qc=group_path("qc/steps_thickness.tsv"),
        params:
            source=THICKNESS_SOURCE,
            path=THICKNESS_PATH,
        log:
            os.path.join(OUT, "logs", "thickness.log"),
        resources:
            mem_mb=cohort_mem_mb(1000, 0.05),
            runtime=cohort_runtime(10, 0.002),
        conda:
            os.path.join(ENVS, "cohort.yaml")
        script:
            "../../scripts/thickness_table.py"


if USER_TABLES:

    # a user table for any registered measure replaces the pipeline's (collect_<m>, rviflow.measures.registry)
    for _m in USER_TABLES:
        if IMAGING and collect_rule(_m):
            workflow.ruleorder("import_table", collect_rule(_m))

    rule import_table:
        input:
            table=lambda w: USER_TABLES[w.measure],
            participants=PARTICIPANTS_TSV,
        output:
            table=group_path("parcels_{measure}.tsv"),
            qc=group_path("qc/steps_{measure}.tsv"),
        wildcard_constraints:
            measure="|".join(USER_TABLES),
        params:
            session=BASELINE_SESSION,  # longitudinal design: the baseline rows (all sessions feed designs.smk)
        log:
            os.path.join(OUT, "logs", "import_table_{measure}.log"),
        conda:
            os.path.join(ENVS, "cohort.yaml")
        script:
            "../../scripts/import_table.py"


rule harmonize:
    input:
        table=group_path("parcels_{measure}.tsv"),
        participants=PARTICIPANTS_TSV,
    output:
        table=group_path("harmonized/parcels_{measure}.tsv"),
        model=group_path("models/combat_{measure}.pkl"),
    params:
        **COHORT_PARAMS,
        min_per_site=COHORT["min_per_site"],
    log:
        os.path.join(OUT, "logs", "harmonize_{measure}.log"),
    resources:
        mem_mb=cohort_mem_mb(2000, 0.1),
        runtime=cohort_runtime(10, 0.002),
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/harmonize.py"


rule effect_summaries:
    input:
        tables=[cohort_table(m) for m in MEASURES],
        participants=PARTICIPANTS_TSV,
    output:
        hemi=group_path("effect_sizes_hemiavg.tsv"),
        ratio=group_path("effect_size_ratio.tsv"),
    params:
        **COHORT_PARAMS,
        measures=MEASURES,
        functional=COHORT["functional"],
        structural=COHORT["structural"],
        n_boot=COHORT["n_boot"],
        seed=COHORT["seed"],
    log:
        os.path.join(OUT, "logs", "effect_summaries.log"),
    resources:
        mem_mb=cohort_mem_mb(2000, 0.1),
        runtime=cohort_runtime(15, 0.005),
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/effect_summaries.py"


rule colocalisation:
    input:
        effects=group_path("effect_sizes.tsv"),
        tables=[cohort_table(m) for m in MEASURES],
        participants=PARTICIPANTS_TSV,
        atlas_image=ATLAS_IMAGE,
        atlas_labels=ATLAS_LABELS,
    output:
        coloc=group_path("colocalisation.tsv"),
        null=group_path("colocalisation_null.tsv"),
        coupling=group_path("coupling.tsv"),
    params:
        **COHORT_PARAMS,
        measures=MEASURES,
        null_method=COLOC["null_method"],
        n_nulls=COLOC["n_nulls"],
        n_perm=COLOC["n_perm"],
        seed=COHORT["seed"],
    log:
        os.path.join(OUT, "logs", "colocalisation.log"),
    resources:
        mem_mb=cohort_mem_mb(2000, 0.1),
        runtime=cohort_runtime(15, 0.005),
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/colocalisation.py"


rule rvi:
    input:
        tables=[cohort_table(m) for m in MEASURES],
        combat=[group_path(f"models/combat_{m}.pkl") for m in MEASURES] if COHORT["harmonize"] else [],
        # ComBat is refitted inside each fold of the cohort-derived expected pattern
        raw=[group_path(f"parcels_{m}.tsv") for m in MEASURES] if COHORT["harmonize"] else [],
        participants=PARTICIPANTS_TSV,
    output:
        rvi=group_path("rvi.tsv"),
        summary=group_path("rvi_summary.tsv"),
        symptoms=group_path("rvi_symptoms.tsv"),
        patterns=[group_path(f"expected_pattern_{m}.tsv") for m in MEASURES],
        references=[group_path(f"models/reference_{m}.pkl") for m in MEASURES],
    params:
        **COHORT_PARAMS,
        measures=MEASURES,
        symptoms=COHORT["symptoms"],
        folds=COHORT["rvi"]["folds"],
        within_site=COHORT["rvi"]["within_site"],
        expected_patterns=COHORT["rvi"]["expected_patterns"],
        n_perm=COHORT["rvi"]["n_perm"],
        n_boot=COHORT["n_boot"],
        seed=COHORT["seed"],
        min_per_site=2,  # per training fold, as in prediction
    log:
        os.path.join(OUT, "logs", "rvi.log"),
    resources:
        mem_mb=cohort_mem_mb(2000, 0.2),
        runtime=cohort_runtime(15, 0.01),
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/rvi.py"


rule prediction:
    input:
        tables=[group_path(f"parcels_{m}.tsv") for m in MEASURES],
        participants=PARTICIPANTS_TSV,
    output:
        group_path("prediction.tsv"),
    params:
        **COHORT_PARAMS,
        measures=MEASURES,
        symptoms=COHORT["symptoms"],
        harmonize=COHORT["harmonize"],
        min_per_site=2,
        outer_folds=COHORT["prediction"]["outer_folds"],
        inner_folds=COHORT["prediction"]["inner_folds"],
        seed=COHORT["seed"],
    log:
        os.path.join(OUT, "logs", "prediction.log"),
    resources:
        mem_mb=cohort_mem_mb(2000, 0.2),
        runtime=cohort_runtime(20, 0.02),
    conda:
        os.path.join(ENVS, "cohort.yaml")
    script:
        "../../scripts/prediction.py"
