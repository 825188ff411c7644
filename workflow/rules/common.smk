# Inputs, participants and output naming. Discovery runs once at parse time through
# rviflow.bids_io; every output path comes from out_path().
import pandas as pd

from rviflow.bids_io import derivative_path, discover_scans, match_participants, read_participants
from rviflow.errors import InputError
from rviflow.parcellate import resolve_atlas

OUT = config["output_dir"]
SPACE = config["space"]
GROUPS = config["groups"]
ENVS = os.path.join(workflow.basedir, "envs")
#: regional measures with a group/parcels_<measure>.tsv; each stage's .smk appends its own
#: (reho.smk: "reho") and provides rules making group/parcels_<m>.tsv + group/qc/steps_<m>.tsv
MEASURES = []


def _load_cohort():
    """participants.tsv (validated) and the scans to process, with discovery QC rows."""
    path = config["participants"] or os.path.join(config["bids_dir"], "participants.tsv")
    required = [GROUPS["column"], *config["covariates"]] + ([config["site_column"]] if config["site_column"] else [])
    try:
        participants = read_participants(path, required)
        validate(participants, os.path.join(workflow.basedir, "workflow/schemas/participants.schema.yaml"))
        scans, problems = discover_scans(config["fmriprep_dir"], config["task"], SPACE)
        scans, problems = match_participants(scans, problems, participants)
    except InputError as exc:
        raise WorkflowError(f"rviflow: {exc}") from None
    for row in problems:
        print(f"rviflow: {row['participant_id']}: {row['reason']} (excluded, see group/qc.tsv)", file=sys.stderr)
    if not scans:
        raise WorkflowError(f"rviflow: no usable task-{config['task']} space-{SPACE} BOLD under {config['fmriprep_dir']}")
    return participants, {s.key: s for s in scans}, problems


PARTICIPANTS, SCANS, DISCOVERY_QC = _load_cohort()
PARTICIPANTS_TSV = config["participants"] or os.path.join(config["bids_dir"], "participants.tsv")
ATLAS_IMAGE, ATLAS_LABELS = resolve_atlas(config["atlas"]["image"], config["atlas"]["labels"])


wildcard_constraints:
    scan=r"sub-[a-zA-Z0-9]+(/ses-[a-zA-Z0-9]+)?/func/sub-[a-zA-Z0-9]+[a-zA-Z0-9_-]*",
    measure=r"[a-z]+",


def out_path(desc, suffix, ext, scan="{scan}"):
    """Derivative path of a per-scan output (a wildcard pattern unless scan is given)."""
    return str(derivative_path(OUT, scan, SPACE, desc, suffix, ext))


def group_path(name):
    return os.path.join(OUT, "group", name)


def work_dir(step, scan="{scan}"):
    """nipype working directory (provenance) of a per-scan step."""
    return os.path.join(OUT, "work", step, scan)


def log_path(step, scan="{scan}"):
    return os.path.join(OUT, "logs", step, f"{scan}.log")


def scan_of(wildcards):
    return SCANS[wildcards.scan]


def per_scan(desc, suffix, ext):
    """The given output for every scan being processed."""
    return [out_path(desc, suffix, ext, scan=key) for key in sorted(SCANS)]


def rviflow_targets():
    return [
        os.path.join(OUT, "dataset_description.json"),
        *[group_path(f"parcels_{m}.tsv") for m in MEASURES],
        group_path("effect_sizes.tsv"),
        group_path("qc.tsv"),
    ]

