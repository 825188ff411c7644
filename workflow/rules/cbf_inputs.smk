# CBF inputs: the ASL series (or perfusion maps) of the subjects being processed, found once at
# parse time through rviflow.io.asl; output naming. (CBF's parcellation and cohort tables:
# measures.smk, generated from the registry like every measure's.)
from rviflow.io.asl import plan_cbf_inputs

CBF = config["cbf"]


def _cbf_inputs():
    if CBF["enabled"] == "no":
        return {}
    try:
        plans, problems = plan_cbf_inputs(SCANS.values(), SPACE, config["fmriprep_dir"], CBF["source"],
                                          config["bids_dir"], CBF["maps_dir"], CBF["maps_glob"], CBF["asl_space"])
    except InputError as exc:
        raise WorkflowError(f"rviflow: {exc}") from None
    # only the analysed session (rviflow.io.scans.analysed_sessions, common.smk)
    plans = {k: v for k, v in plans.items() if SESSIONS.get(v.participant_id, "") in ("", v.session or "")}
    already = {r["participant_id"] for r in DISCOVERY_QC}  # reported once, at BOLD discovery
    problems = [r for r in problems if r["participant_id"] not in already]
    for row in problems:
        print(f"rviflow: {row['participant_id']}: {row['reason']} (no CBF, see group/qc.tsv)", file=sys.stderr)
    DISCOVERY_QC.extend(problems)
    if not plans and CBF["enabled"] == "yes":
        raise WorkflowError(f"rviflow: cbf.enabled is yes but no usable CBF input ({CBF['source']}) was found")
    return plans


CBF_INPUTS = _cbf_inputs()
CBF_BATCHES = batches_of("cbf", CBF_INPUTS)  # {} unless batch_size > 0 (rules in batch.smk)
CBF_MEASURES = {"absolute": "cbf", "relative": "rcbf"}
CBF_ANALYSED = [CBF_MEASURES[a] for a in (["relative"] if CBF["source"] == "spect" else CBF["analyse"])] or ["cbf"]


wildcard_constraints:
    aslscan=r"sub-[a-zA-Z0-9]+(/ses-[a-zA-Z0-9]+)?/perf/sub-[a-zA-Z0-9]+[a-zA-Z0-9_-]*",


def cbf_path(desc, suffix, ext, key="{aslscan}"):
    return out_path(desc, suffix, ext, scan=key)


def cbf_of(wildcards):
    return CBF_INPUTS[wildcards.aslscan]
