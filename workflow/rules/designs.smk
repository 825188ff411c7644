# Treatment and biomarker designs (config `design:`, `associations:`; rviflow.longitudinal,
# rviflow.associations): paired change, change vs symptom change, baseline prediction of the
# response, region-level associations. Inputs and checks: design_inputs.smk.


if LONGITUDINAL:

    rule change:
        input:
            tables=list(LONGITUDINAL_INPUTS.values()),
            participants=PARTICIPANTS_TSV,
            sessions=sessions_files(),
        output:
            change=group_path("change.tsv"),
            associations=group_path("change_associations.tsv"),
        params:
            measures=list(LONGITUDINAL_INPUTS),
            spec=DESIGN_SPEC,
            design=DESIGN,
            bids_dir=config["bids_dir"],
            combine_runs=config["combine_runs"],
        log:
            os.path.join(OUT, "logs", "change.log"),
        resources:
            mem_mb=cohort_mem_mb(2000, 0.1),
            runtime=cohort_runtime(10, 0.005),
        conda:
            os.path.join(ENVS, "cohort.yaml")
        script:
            "../../scripts/change.py"


if LONGITUDINAL and DESIGN["prediction"]["enabled"]:

    rule response_prediction:
        input:
            tables=list(LONGITUDINAL_INPUTS.values()),
            participants=PARTICIPANTS_TSV,
            sessions=sessions_files(),
        output:
            group_path("response_prediction.tsv"),
        params:
            measures=list(LONGITUDINAL_INPUTS),
            spec=DESIGN_SPEC,
            design=DESIGN,
            bids_dir=config["bids_dir"],
            combine_runs=config["combine_runs"],
        log:
            os.path.join(OUT, "logs", "response_prediction.log"),
        resources:
            mem_mb=cohort_mem_mb(2000, 0.2),
            runtime=cohort_runtime(20, 0.05),
        conda:
            os.path.join(ENVS, "cohort.yaml")
        script:
            "../../scripts/response_prediction.py"


if ASSOCIATIONS:

    rule associations:
        input:
            # site is a term of the model, so the tables before ComBat (which would not preserve the variable)
            tables=[group_path(f"parcels_{m}.tsv") for m in MEASURES],
            participants=PARTICIPANTS_TSV,
            participants_raw=PARTICIPANTS_RAW,  # the variables (group/participants.tsv keeps the configured columns)
            sessions=sessions_files(),
        output:
            group_path("associations.tsv"),
        params:
            measures=MEASURES,
            spec=DESIGN_SPEC,
            analyses=ASSOCIATIONS,
            design=DESIGN,
            bids_dir=config["bids_dir"],
        log:
            os.path.join(OUT, "logs", "associations.log"),
        resources:
            mem_mb=cohort_mem_mb(2000, 0.1),
            runtime=cohort_runtime(10, 0.005),
        conda:
            os.path.join(ENVS, "cohort.yaml")
        script:
            "../../scripts/associations.py"
