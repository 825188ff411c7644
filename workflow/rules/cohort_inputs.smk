# Cohort-stage inputs: thickness source, user tables and the measure list they extend
# (functions live here so cohort.smk holds rules only; included right before cohort.smk).
COHORT = config["cohort"]


def cohort_thickness_source():
    """(source, path) of cortical thickness: ENIGMA table, FreeSurfer subjects dir, or (None, "")."""
    t = COHORT["thickness"]
    if t["source"] == "enigma":
        return "enigma", t["enigma_table"]
    fs = t["freesurfer_dir"] or os.path.join(config["fmriprep_dir"], "sourcedata", "freesurfer")
    if t["source"] == "freesurfer" or (t["source"] == "auto" and os.path.isdir(fs)):
        return "freesurfer", fs
    return None, ""


THICKNESS_SOURCE, THICKNESS_PATH = cohort_thickness_source()
if THICKNESS_SOURCE and "thickness" not in MEASURES:
    MEASURES.append("thickness")
USER_TABLES = dict(COHORT["tables"])
MEASURES.extend(m for m in USER_TABLES if m not in MEASURES)


def cohort_table(measure):
    """The subject x region table the statistics use: ComBat-harmonised unless cohort.harmonize is false."""
    return group_path(f"harmonized/parcels_{measure}.tsv") if COHORT["harmonize"] else group_path(f"parcels_{measure}.tsv")


COHORT_PARAMS = dict(groups=GROUPS, covariates=config["covariates"], site_column=config["site_column"],
                     min_per_group=config["min_per_group"])
