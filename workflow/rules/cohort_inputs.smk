# Cohort-stage inputs: thickness source, user tables and the measure list they extend, checked
# at parse time (functions live here so cohort.smk holds rules only; included right before
# cohort.smk). In a tables-only run (no fmriprep_dir) these are the only measures.
COHORT = config["cohort"]


def cohort_thickness_source():
    """(source, path) of cortical thickness: ENIGMA table, FreeSurfer subjects dir, or (None, "")."""
    t = COHORT["thickness"]
    if t["source"] == "enigma":
        return "enigma", t["enigma_table"]
    fs = t["freesurfer_dir"] or (os.path.join(config["fmriprep_dir"], "sourcedata", "freesurfer") if IMAGING else "")
    if t["source"] == "freesurfer" or (t["source"] == "auto" and fs and os.path.isdir(fs)):
        return "freesurfer", fs
    return None, ""


def check_cohort_inputs():
    """Stop before any job when a configured regional input is missing, or nothing is to be analysed."""
    wanted = [(f"cohort.tables.{m}", p, os.path.isfile, "") for m, p in USER_TABLES.items()]
    if THICKNESS_SOURCE == "enigma":
        wanted.append(("cohort.thickness.enigma_table", THICKNESS_PATH, os.path.isfile, "source enigma needs it"))
    elif THICKNESS_SOURCE == "freesurfer":
        wanted.append(("cohort.thickness.freesurfer_dir", THICKNESS_PATH, os.path.isdir,
                       "source freesurfer needs it when there is no fmriprep_dir"))
    for key, path, exists, why in wanted:
        if not path:
            raise WorkflowError(f"rviflow: config {key} is empty" + (f" ({why})" if why else ""))
        if not exists(path):
            raise WorkflowError(f"rviflow: config {key}: {path} does not exist")
    if not MEASURES:
        raise WorkflowError("rviflow: nothing to analyse: fmriprep_dir is empty (no images) and neither cohort.tables "
                            "nor cohort.thickness (enigma, or freesurfer with freesurfer_dir) gives a regional table")


THICKNESS_SOURCE, THICKNESS_PATH = cohort_thickness_source()
if THICKNESS_SOURCE and "thickness" not in MEASURES:
    MEASURES.append("thickness")
USER_TABLES = dict(COHORT["tables"])
MEASURES.extend(m for m in USER_TABLES if m not in MEASURES)
check_cohort_inputs()


def cohort_table(measure):
    """The subject x region table the statistics use: ComBat-harmonised unless cohort.harmonize is false."""
    return group_path(f"harmonized/parcels_{measure}.tsv") if COHORT["harmonize"] else group_path(f"parcels_{measure}.tsv")


COLOC = dict(COHORT["colocalisation"])
if "n_null" in COLOC:  # the key's former name
    COLOC["n_nulls"] = COLOC.pop("n_null")

#: params.cohort: who is who in participants.tsv (rviflow.cohort.stats.CohortSpec.from_config)
COHORT_PARAMS = dict(cohort=dict(groups=GROUPS, covariates=config["covariates"], site_column=config["site_column"],
                                 min_per_group=config["min_per_group"]))
