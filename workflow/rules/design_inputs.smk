# Treatment and biomarker designs (config `design:`, `associations:`; rules in designs.smk):
# the longitudinal design's checks at parse time (sessions, sessions table: every problem one
# line + a group/qc.tsv row), the measures with per-session tables, and the designs' targets.
# Included after cohort_inputs.smk (MEASURES, USER_TABLES) and before cohort.smk.
from rviflow.cohort.designs import available_in_tables
from rviflow.io.scans import longitudinal_sessions
from rviflow.io.sessions import check_sessions, read_sessions

DESIGN = config["design"]
LONGITUDINAL = DESIGN["type"] == "longitudinal"
ASSOCIATIONS = config["associations"]
#: config groups and covariates as the design scripts take them
DESIGN_SPEC = dict(group_column=GROUPS["column"], case=GROUPS["case"], control=GROUPS["control"],
                   covariates=list(config["covariates"]), site_column=config["site_column"])


def _user_table_sessions():
    """{participant_id: sessions} of the user tables that have a session column, and
    {(participant_id, session): file}."""
    try:
        return available_in_tables(list(USER_TABLES.values()))
    except (OSError, ValueError) as exc:
        raise WorkflowError(f"rviflow: cohort.tables: {exc}") from None


def longitudinal_inputs():
    """{measure: per-session table}: the pipeline's group/parcels_<m>_scans.tsv (every scan of
    both sessions) or a cohort.tables file with a session column."""
    out = {}
    per_scan = {s.name for s in PARCELLATED} if IMAGING else set()  # measures_inputs.smk
    for m in MEASURES:
        if m in USER_TABLES:
            if available_in_tables([USER_TABLES[m]])[0]:
                out[m] = USER_TABLES[m]
        elif m in per_scan:
            out[m] = group_path(f"parcels_{m}_scans.tsv")
    return out


def sessions_files():
    """The files holding the per-session variables (inputs of the design rules)."""
    if DESIGN["sessions_table"]:
        return [DESIGN["sessions_table"]]
    ids = PARTICIPANTS["participant_id"] if len(PARTICIPANTS) else []
    return [p for pid in ids if os.path.isfile(p := os.path.join(config["bids_dir"], pid, f"{pid}_sessions.tsv"))] \
        if config["bids_dir"] else []


def _check_design():
    """Stop before any job on a contradictory design; report the sessions' problems (one line each)."""
    if not LONGITUDINAL:
        return {}
    b, f = DESIGN["baseline"], DESIGN["followup"]
    if not b or not f or b == f:
        raise WorkflowError("rviflow: design.type longitudinal needs design.baseline and design.followup, two different "
                            f"ses- labels (got {b!r} and {f!r})")
    if DESIGN["sessions_table"] and not os.path.isfile(DESIGN["sessions_table"]):
        raise WorkflowError(f"rviflow: config design.sessions_table: {DESIGN['sessions_table']} does not exist")
    inputs = longitudinal_inputs()
    if not inputs:
        raise WorkflowError("rviflow: design.type longitudinal but no measure has per-session data (images with ses- "
                            "folders, or a cohort.tables file with a session column)")
    if IMAGING:  # SCANS holds the baseline and follow-up scans analysed (rviflow.io.scans.analysed_scans)
        available, rows = {}, []
        for s in SCANS.values():
            available.setdefault(s.participant_id, set()).add(s.session or "")
    else:
        found, files = _user_table_sessions()
        _, rows = longitudinal_sessions({p: sorted(v) for p, v in found.items()}, b, f, files)
        available = {p: {s for s in v if s in (b, f)} for p, v in found.items() if b in v}
    try:
        long = read_sessions(config["bids_dir"], sorted(available), DESIGN["sessions_table"])
    except InputError as exc:
        raise WorkflowError(f"rviflow: {exc}") from None
    _, qc = check_sessions(long, available, b, f, DESIGN["symptoms"])
    for row in (rows + qc) if workflow.is_main_process else []:
        if row["status"] != "ok":
            print(f"rviflow: {row['participant_id']}: {row['reason']}", file=sys.stderr)
    DISCOVERY_QC.extend(rows + qc)
    return inputs


LONGITUDINAL_INPUTS = _check_design()


def design_map_file(name):
    """The table of a design map for transcriptomics.maps, "" if ``name`` is none: change_<m>
    (the case group's d_z, group/change.tsv) or assoc_<m>_<variable> (partial r, associations.tsv)."""
    if name.startswith("change_") and LONGITUDINAL and name[7:] in LONGITUDINAL_INPUTS:
        return group_path("change.tsv")
    if name.startswith("assoc_") and ASSOCIATIONS:
        measure, _, variable = name[6:].partition("_")
        if measure in MEASURES and any(variable in a["variables"] for a in ASSOCIATIONS):
            return group_path("associations.tsv")
    return ""


def design_targets():
    """Outputs of the designs (designs.smk)."""
    out = []
    if LONGITUDINAL:
        out += [group_path("change.tsv"), group_path("change_associations.tsv")]
        if DESIGN["prediction"]["enabled"]:
            out.append(group_path("response_prediction.tsv"))
    if ASSOCIATIONS:
        out.append(group_path("associations.tsv"))
    return out
