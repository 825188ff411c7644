# Inputs, participants and output naming. Discovery runs once at parse time through
# rviflow.io.bids; every output path comes from out_path().
import functools
import re
import time

import pandas as pd

from rviflow.io.bids import (check_config_paths, clean_participants, derivative_path, discover_scans,
                             match_participants, read_participants, scans_resolution)
from rviflow.errors import InputError
from rviflow.measures.registry import GENERATED, REGISTRY, collect_rule, instances, step_options
from rviflow.preprocess.parcellate import resolve_atlas
from rviflow.io.scans import analysed_scans

for _key in ("bids_dir", "fmriprep_dir"):  # "", null or absent: not given
    config[_key] = config.get(_key) or ""
# group labels may be numbers in YAML (case: 1); participants.tsv values are compared as text
config["groups"] = {k: str(v) for k, v in config["groups"].items()}
#: images to process; without fmriprep_dir the cohort stage runs on regional tables alone
#: (cohort.tables, cohort.thickness) and participants.tsv: no per-scan steps
IMAGING = bool(config["fmriprep_dir"])
OUT = config["output_dir"]
SPACE = config.get("space", "")
GROUPS = config["groups"]
ENVS = os.path.join(workflow.basedir, "envs")
#: regional measures with a group/parcels_<measure>.tsv; each stage's .smk appends its own
#: (reho.smk: "reho") and provides rules making group/parcels_<m>.tsv + group/qc/steps_<m>.tsv
MEASURES = []


def _config_conflicts():
    """Config values that contradict each other: one line naming the keys, before any job."""
    c = config["cohort"]
    if c["harmonize"] and not config["site_column"]:
        return ("config site_column is empty but cohort.harmonize is true (ComBat needs sites): set site_column "
                "or cohort.harmonize: false")
    if c["rvi"]["enabled"] and c["rvi"]["within_site"] and not config["site_column"]:
        return ("config site_column is empty but cohort.rvi.within_site is true: set site_column or "
                "cohort.rvi.within_site: false")
    return None


def _participant_problems(raw):
    """Every unusable participants.tsv row, printed at once (one line each); the usable rows and
    {participant_id: reason} of the excluded ones."""
    c = config["cohort"]
    clean, problems = clean_participants(raw, GROUPS["column"], GROUPS["case"], GROUPS["control"],
                                         config["covariates"], config["site_column"], c["symptoms"])
    say = workflow.is_main_process  # once, not again in every job that re-reads the workflow
    for p in problems if say else []:
        print(f"rviflow: {PARTICIPANTS_RAW}: {p['participant_id']}: {p['reason']} (excluded, see group/qc.tsv)",
              file=sys.stderr)
    other = [p["value"].strip("'") for p in problems if p["column"] == GROUPS["column"] and p["value"] != "n/a"]
    if other and say:
        counts = pd.Series(other).value_counts()
        print(f"rviflow: {len(other)} participant(s) left out with a {GROUPS['column']} other than "
              f"{GROUPS['case']!r} / {GROUPS['control']!r}: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
              file=sys.stderr)
    missing = [s for s in c["symptoms"] if s not in clean.columns]
    # the default list is used "when present": name missing ones when some are there or the list was set
    if missing and say and (len(missing) < len(c["symptoms"]) or c["symptoms"] != ["hamd", "phq9", "madrs", "bdi"]):
        print(f"rviflow: cohort.symptoms {', '.join(missing)} not in {PARTICIPANTS_RAW} (not used)", file=sys.stderr)
    reasons = {}
    for p in problems:
        reasons.setdefault(p["participant_id"], []).append(p["reason"])
    return clean, {pid: "; ".join(r) for pid, r in reasons.items()}


def _load_cohort():
    """participants.tsv (every row checked), the scans to process, discovery QC rows and the
    analysed session per subject (no scans in a tables-only run)."""
    required = [GROUPS["column"], *config["covariates"]] + ([config["site_column"]] if config["site_column"] else [])
    try:
        if not PARTICIPANTS_RAW:
            raise InputError("config participants and bids_dir are both empty: set participants (a participants.tsv "
                             "with the group, covariate and site columns) or bids_dir (the BIDS dataset holding it)")
        check_config_paths(config["bids_dir"], config["fmriprep_dir"], config["output_dir"], config["participants"])
        if (conflict := _config_conflicts()):
            raise InputError(conflict)
        raw = read_participants(PARTICIPANTS_RAW, required, numeric=())
        participants, excluded = _participant_problems(raw)
        if not IMAGING:
            return participants, {}, [], {}, ""
        scans, problems = discover_scans(config["fmriprep_dir"], config["task"], SPACE, config["res"],
                                         config["run"], config["acq"])
        scans, problems = match_participants(scans, problems, raw)
        scans, rows, chosen = analysed_scans(scans, excluded, config["session"], config["bids_dir"], config["design"])
        problems += rows
    except InputError as exc:
        raise WorkflowError(f"rviflow: {exc}") from None
    for row in problems if workflow.is_main_process else []:
        if row["step"] != "participants" and not (row["step"] == "session" and row["status"] == "ok"):  # said above
            print(f"rviflow: {row['participant_id']}: {row['reason']} (excluded, see group/qc.tsv)", file=sys.stderr)
    if not scans:
        raise WorkflowError(f"rviflow: no usable task-{config['task']} space-{SPACE} BOLD under {config['fmriprep_dir']}"
                            " (every subject excluded: see the lines above)")
    res = config["res"] if config["res"] != "native" else ""
    return participants, {s.key: s for s in scans}, problems, chosen, res or scans_resolution(scans)


#: the participants.tsv given (config participants, else <bids_dir>/participants.tsv); the cohort
#: rules read PARTICIPANTS_TSV, its usable rows (rule participants_table in cohort.smk)
PARTICIPANTS_RAW = config["participants"] or (
    config["bids_dir"] and os.path.join(config["bids_dir"], "participants.tsv")
)
PARTICIPANTS_TSV = os.path.join(OUT, "group", "participants.tsv")
#: SESSIONS: {participant_id: analysed session} (rviflow.io.scans.analysed_sessions); RES: res- of the outputs
PARTICIPANTS, SCANS, DISCOVERY_QC, SESSIONS, RES = _load_cohort()
#: longitudinal design: the baseline session, whose values the cross-sectional statistics use ("" otherwise)
BASELINE_SESSION = config["design"]["baseline"] if config["design"]["type"] == "longitudinal" else ""
ATLAS_IMAGE, ATLAS_LABELS = resolve_atlas(config["atlas"]["image"], config["atlas"]["labels"])
#: participant_label (rviflow run --participant-label): only these subjects' per-scan jobs run;
#: the per-scan wildcards match only them, and the cohort stage reads every other subject's
#: finished outputs as plain files (scans of others with none are left out: subset_scans)
LABELS = sorted({lab if lab.startswith("sub-") else f"sub-{lab}" for lab in config["participant_label"]})
SUBJECT_RE = "|".join(re.escape(lab) for lab in LABELS) if LABELS else r"sub-[a-zA-Z0-9]+"


def subset_scans(scans, finished, what):
    """``scans`` ({key: scan}) of LABELS plus those of other subjects whose per-scan outputs are
    finished (``finished(key)``); one line names what is left out and why."""
    if not LABELS:
        return scans
    unknown = sorted(set(LABELS) - {s.participant_id for s in scans.values()})
    if unknown and workflow.is_main_process and what == "BOLD":
        print(f"rviflow: participant_label {', '.join(unknown)}: no usable {what} scan (see the lines above)",
              file=sys.stderr)
    kept = {k: s for k, s in scans.items() if s.participant_id in LABELS or finished(k)}
    left = sorted({s.participant_id for k, s in scans.items() if k not in kept})
    if left and workflow.is_main_process:
        shown = ", ".join(left[:5]) + (f" ... ({len(left)} subjects)" if len(left) > 5 else "")
        print(f"rviflow: participant_label: {shown}: no finished {what} outputs and not selected: not run, "
              "left out of the cohort stage", file=sys.stderr)
    return kept


def _bold_finished(key):
    """A scan's BOLD measures are finished: every file the cohort stage reads exists (parcels,
    their sidecars, the step and series sidecars of each enabled BOLD measure)."""
    series = {"denoise": "denoised", "regress": "regressed"}
    specs = [REGISTRY["reho"]] + [g for g in GENERATED.values() if config.get(g.config_section, {}).get("enabled")]
    files = [out_path(sp.name, "parcels", ext, scan=key) for sp in specs for ext in (".tsv", ".json")]
    files += [out_path(sp.outputs["json"].desc, sp.outputs["json"].suffix, ".json", scan=key) for sp in specs]
    files += [out_path(series[sp.chain[0]], "bold", ".json", scan=key) for sp in specs]
    return all(os.path.exists(f) for f in files)


wildcard_constraints:
    scan=rf"(?:{SUBJECT_RE})(/ses-[a-zA-Z0-9]+)?/func/sub-[a-zA-Z0-9]+[a-zA-Z0-9_-]*",
    measure=r"[a-z][a-z0-9]*(_[a-z0-9]+)?",  # fc_<seed>: a family member


def out_path(desc, suffix, ext, scan="{scan}"):
    """Derivative path of a per-scan output (a wildcard pattern unless scan is given)."""
    return _out_pattern(desc, suffix, ext).replace("{scan}", scan)


@functools.lru_cache(maxsize=None)
def _out_pattern(desc, suffix, ext):
    # rviflow.io.bids.derivative_path names every output; building it once per kind and filling
    # in the scan key is ~30x faster than a Path per file (250,000 of them at UK Biobank size)
    return str(derivative_path(OUT, "{scan}", SPACE, desc, suffix, ext, RES))


SCANS = subset_scans(SCANS, _bold_finished, "BOLD")


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
        *cohort_targets(),
        *design_targets(),  # design_inputs.smk (config design: longitudinal, associations)
        *transcriptomics_targets(),  # transcriptomics.smk (when transcriptomics.enabled)
        os.path.join(OUT, "report", "rviflow_report.html"),  # report.smk
    ]


def cohort_targets():
    """Outputs of the cohort statistics (cohort.smk; config `cohort:`)."""
    c = config["cohort"]
    out = [group_path("effect_sizes_hemiavg.tsv"), group_path("effect_size_ratio.tsv")]
    if c["colocalisation"]["enabled"] and len(MEASURES) > 1:
        out += [group_path(n) for n in ("colocalisation.tsv", "colocalisation_null.tsv", "coupling.tsv")]
    if c["rvi"]["enabled"]:
        out += [group_path(n) for n in ("rvi.tsv", "rvi_summary.tsv", "rvi_symptoms.tsv")]
        out += [group_path(f"expected_pattern_{m}.tsv") for m in MEASURES]
    if c["prediction"]["enabled"]:
        out.append(group_path("prediction.tsv"))
    return out


def transcriptomics_targets():
    """Outputs of the imaging transcriptomics (transcriptomics.smk; config `transcriptomics:`):
    per map its genes and PLS tables and one enrichment table per gene-set collection."""
    tx = config["transcriptomics"]
    if not tx["enabled"]:
        return []
    out = []
    for m in tx["maps"]:
        out += [group_path(f"transcriptomics/{m}_{kind}.tsv") for kind in ("genes", "pls")]
        out += [group_path(f"transcriptomics/{m}_enrichment_{c}.tsv") for c in tx["collections"]]
    return out


# Cluster resources (the rules' resources:, which the SLURM profile turns into sbatch requests).
# A per-scan job's memory and run time grow with the size of the scan's fMRIPrep BOLD or ASL
# series (.nii.gz: a stat, never an image read); a cohort job's with the number of scans. Each doubles on a retry
# (`attempt`; the SLURM profile sets retries: 1). Calibration: benchmarks/results/bench_reho.md
# (a 350 MB UK Biobank run: ReHo peaks at 2 GB); override per rule with --set-resources.
def _bold_mb(wildcards):
    """Size (MB) of a per-scan job's main input: the fMRIPrep BOLD, or the ASL series / CBF map."""
    try:
        if "aslscan" in wildcards.keys():
            return file_mb(CBF_INPUTS[wildcards.aslscan].source_file)  # cbf.smk
        return file_mb(scan_of(wildcards).bold)
    except KeyError:
        return 0.0


def scan_mem_mb(base_mb, mb_per_bold_mb):
    """mem_mb of a per-scan job: base_mb + mb_per_bold_mb x (BOLD .nii.gz size in MB), x attempt."""
    return lambda wildcards, attempt: int((base_mb + mb_per_bold_mb * _bold_mb(wildcards)) * attempt)


def scan_runtime(base_min, min_per_bold_mb):
    """runtime (minutes) of a per-scan job: base_min + min_per_bold_mb x BOLD MB, x attempt."""
    return lambda wildcards, attempt: int((base_min + min_per_bold_mb * _bold_mb(wildcards)) * attempt)


def cohort_mem_mb(base_mb, mb_per_scan):
    """mem_mb of a cohort job: base_mb + mb_per_scan x number of scans, x attempt."""
    return lambda wildcards, attempt: int((base_mb + mb_per_scan * len(SCANS)) * attempt)


def cohort_runtime(base_min, min_per_scan):
    """runtime (minutes) of a cohort job: base_min + min_per_scan x number of scans, x attempt."""
    return lambda wildcards, attempt: int((base_min + min_per_scan * len(SCANS)) * attempt)



# Batch mode (config batch_size > 0; rviflow.pipeline.batches): the per-scan steps of batch_size scans
# run as one job (rules reho_batch / cbf_batch), so a 15,501-subject cohort is a few hundred
# jobs, not 77,500. Membership is stable across runs (a manifest under work/): new scans fill
# new batches. Cohort rules then depend on the batches' records and get the per-scan files as
# params (per_scan_files); in per-scan mode (batch_size 0) they depend on the files themselves.
# batch_size auto (the default): per-scan jobs below batch_auto.min_scans scans of a chain, batches
# of batch_auto.size at or above (rviflow.pipeline.batches.batch_size_for); participant_label: per-scan jobs.
BATCH_SIZE = config["batch_size"]
REHO_BATCHES, CBF_BATCHES = {}, {}  # set by reho.smk / cbf_inputs.smk in batch mode


def batches_of(chain, keys):
    """{batch id: scan keys} of a chain (reho, cbf); {} in per-scan mode."""
    from rviflow.pipeline.batches import assign_batches, batch_size_for

    manifest = os.path.join(OUT, "work", f"batches_{chain}.tsv")
    size = 0 if LABELS else batch_size_for(BATCH_SIZE, len(keys), manifest, **config["batch_auto"])
    if not size or not keys:
        return {}
    return assign_batches(sorted(keys), manifest, size)


def batch_record(chain, batch="{batch}"):
    """The declared output of a batch job: one row per scan with its status."""
    return os.path.join(OUT, "work", "batches", chain, f"batch-{batch}.tsv")


def per_scan_inputs(chain, batches, **files):
    """Inputs of the cohort rules that read per-scan outputs: the files (per-scan mode) or the
    batch records (batch mode). ``files``: name -> list of per-scan paths."""
    if batches:
        return dict(batches=[batch_record(chain, b) for b in sorted(batches)])
    return files


def batch_mem_mb(base_mb, mb_per_bold_mb, sizes):
    """mem_mb of a batch job: scans run one after the other, so its largest scan counts."""
    return lambda wildcards, attempt: int((base_mb + mb_per_bold_mb * max(sizes(wildcards), default=0)) * attempt)


def batch_runtime(base_min, min_per_bold_mb, sizes):
    """runtime (minutes) of a batch job: the sum over its scans of the per-scan estimate."""
    return lambda wildcards, attempt: int(sum(base_min + min_per_bold_mb * s for s in sizes(wildcards)) * attempt)


def file_mb(path):
    """Size of a file in MB (0 if it cannot be read: resources must not fail the DAG)."""
    try:
        return os.path.getsize(path) / 2**20
    except OSError:
        return 0.0


# End of run (the onsuccess / onerror hooks in report.smk; REPORT_HTML is set there).
RUN_START = time.time()


def finish_run(ok):
    """End of every run (success or error): qc.tsv and the report exist (written here from what the
    run produced if a failure kept their rules from running), then one summary line."""
    from rviflow.cohort.tables import write_qc_table
    from rviflow.pipeline.outcome import failure_of, run_summary
    from rviflow.report.document import build_report

    qc = group_path("qc.tsv")

    def stale(path):  # not written by this run (its rule did not get to run)
        return not os.path.exists(path) or os.path.getmtime(path) < RUN_START

    if not ok:
        try:
            if stale(qc):
                steps = [group_path(f"qc/steps_{m}.tsv") for m in MEASURES] + [group_path("qc/cohort.tsv")]
                write_qc_table(list(DISCOVERY_QC), [s for s in steps if os.path.exists(s)], qc)
            if stale(REPORT_HTML):
                build_report(OUT, dict(config), REPORT_HTML,
                             PARTICIPANTS_TSV if os.path.exists(PARTICIPANTS_TSV) else PARTICIPANTS_RAW,
                             ATLAS_IMAGE, ATLAS_LABELS, log=os.path.join(OUT, "logs", "report.log"))
        except Exception as exc:  # the summary line below still says what exists
            print(f"rviflow: could not write qc.tsv / the report after the failure: {exc}", file=sys.stderr)
    failed = {os.path.relpath(t, OUT): r for t in rviflow_targets() if os.path.exists(t) and (r := failure_of(t))}
    print(run_summary(qc, REPORT_HTML, failed), file=sys.stderr)
