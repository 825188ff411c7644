"""Synthetic pre / post treatment cohort with a planted truth (``rviflow demo --design longitudinal``).

Per subject s, region r and session (``pre`` = baseline, ``post`` = follow-up) the homogeneity
parameter a (as in :mod:`rviflow.synth.cohort`; ReHo rises with it) is

    a_pre  = base_r + site offset + age slope * (age - 45) + N(0, SD_BETWEEN) [- MDD deficit]
             + t_pred (PREDICTOR_REGIONS) + t_crp (ASSOCIATION_REGIONS)
    a_post = a_pre + N(0, SD_WITHIN)
             + CHANGE_DZ * SD_WITHIN                 (patients, CHANGE_REGIONS: treatment effect)
             + COUPLING * SD_WITHIN * z(improvement)   (patients, COUPLING_REGIONS)

Symptoms (``hamd``): baseline ~ N(24, 4); a patient's relative improvement is
0.45 + PREDICTOR_WEIGHT * z(baseline a in PREDICTOR_REGIONS) + noise, so the baseline measure
there predicts the response; follow-up = baseline x (1 - improvement); controls score 0-6 at
both visits. z(.) is standardised over the patients. A fraction of patients has no follow-up
(``FOLLOWUP_MISSING``) and a third of the controls is scanned twice (no change planted).
Outside the planted regions nothing is planted: the null the tests check. t_pred ~ N(0,
PREDICTOR_TRAIT_SD) and t_crp ~ N(0, CRP_TRAIT_SD) are subject traits shared by the regions of
the predictor and of the biomarker (constant across sessions, so no change).

Why these sizes (image mode, ``rviflow demo --design longitudinal``: 24 subjects, ~15 patients
with both sessions). ReHo measured on the synthetic BOLD after the default band-pass
(0.01-0.08 Hz at TR 2 s keeps ~30 % of the spectrum) is a noisy read-out of a: its regional
value moves ~0.18 per unit of a, with a scan-to-scan noise of ~0.16 a-units at 100 volumes and
~0.08 at 200 (median over regions; 0.05-0.10 interquartile), against SD_BETWEEN = 0.1 and
SD_WITHIN = 0.05. With 100 volumes and a change of 4 SD_WITHIN, coupling 2 and region-own
predictor / biomarker signals only the change was recovered (coupling 1/4 regions, predictor
r ~0.25, CRP none). Hence: 200 volumes per scan (write_longitudinal_cohort's default; the demo
takes ~4 min on 2 cores, 5 with another job running, as before: the per-job overhead dominates), CHANGE_DZ 5,
COUPLING 4, and the two shared traits (a trait common to a few regions survives the measurement
noise where one region's own value does not). Measured on the demo's cohort (seed 0) these are:
change d_z 1.3-3.8 of the measured ReHo (median ~2.2; planted d_z 5 of a), coupling partial
r -0.86 to -0.96, CRP partial r 0.71-0.96 over the 4 regions, baseline predictor ridge r 0.66
(permutation p 0.025; the linear SVR weaker, r ~0.4, p ~0.1): large effects, as a 15-patient
demo needs for FDR over 83 regions. Seed 1 (14 patients with both sessions): change 6/6,
coupling 4/4, CRP 4/4 regions at q < 0.05 (2/4 with a CRP trait of 0.15 and 0.7 mg/l noise,
hence 0.2 and 0.5), ridge r 0.75 (p 0.02), SVR r 0.70 (p 0.005). A planted effect spreads a
little to neighbouring regions' measured ReHo (the BOLD's spatially smooth shared signal,
ReHo's 27-voxel neighbourhood), so a neighbour can reach q < 0.05 (seed 0: transverse temporal,
beside the insula, in change.tsv; isthmus cingulate, beside the lingual, in associations.tsv;
seed 1 has one chance hit per table too); the tests allow 2 hits outside the planted regions per table.
The tables-only cohort (``write_longitudinal_tables``, N(0, 0.02) measurement noise) has the
same planted values.

Written: participants.tsv; per-session scores in BIDS ``sub-<label>/sub-<label>_sessions.tsv``
(images) or one long ``sessions.tsv`` (tables); ``truth/longitudinal.tsv`` (region,
planted_change_dz, planted_coupling, planted_predictor, planted_crp) and ``truth/homogeneity.tsv``.
participants.tsv also has ``crp``, a biomarker tracking the baseline value in
ASSOCIATION_REGIONS (for ``associations:``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

BASELINE, FOLLOWUP = "pre", "post"
CHANGE_REGIONS = ("precuneus", "posteriorcingulate", "insula")
COUPLING_REGIONS = ("superiorfrontal", "caudalmiddlefrontal")
PREDICTOR_REGIONS = ("rostralanteriorcingulate", "medialorbitofrontal", "lateralorbitofrontal")
#: regions whose baseline value tracks the participants.tsv biomarker ``crp`` (associations)
ASSOCIATION_REGIONS = ("lingual", "cuneus")
CHANGE_DZ = 5.0  # large: see the module docstring (measured d_z ~1.3-3.8)
COUPLING = 4.0
PREDICTOR_WEIGHT = 0.25
#: SDs of the subject traits shared by the PREDICTOR_REGIONS and by the ASSOCIATION_REGIONS
PREDICTOR_TRAIT_SD = 0.2
CRP_TRAIT_SD = 0.2
CRP_NOISE = 0.5  # mg/l, beside the planted 1.5 mg/l per SD of the association regions' baseline
SD_WITHIN = 0.05
FOLLOWUP_MISSING = 0.15


def simulate(names: list[str], labels: list[str], n_subjects: int = 40, seed: int = 0, n_sites: int = 3,
             null: bool = False) -> dict:
    """The planted truth, without files.

    Parameters
    ----------
    names, labels : region names (columns) and their structure labels (``precuneus`` ...)
    null : plant nothing (no change, coupling, predictor or deficit): for calibration

    Returns
    -------
    dict: participants (participant_id, diagnosis, age, sex, site), sessions (long:
    participant_id, session, hamd), pre / post (subjects x regions homogeneity; post only for
    subjects with a follow-up), truth (region, planted_change_dz, planted_coupling, planted_predictor)
    """
    from rviflow.synth.cohort import PLANTED_D, PLANTED_REGIONS, SD_BETWEEN

    rng = np.random.default_rng([seed, 1818])
    labels = np.asarray(labels)
    pids = [f"sub-{i + 1:03d}" for i in range(n_subjects)]
    site_idx = np.arange(n_subjects) % n_sites
    case = (np.arange(n_subjects) // n_sites) % 3 != 2   # two thirds patients, in every site
    age = np.round(rng.uniform(20, 65, n_subjects), 1)
    participants = pd.DataFrame(dict(participant_id=pids, diagnosis=np.where(case, "MDD", "HC"), age=age,
                                     sex=rng.choice(["F", "M"], n_subjects), site=[f"site{i + 1}" for i in site_idx]))
    gain = 0.0 if null else 1.0
    base = 0.35 + 0.3 * rng.random(len(names))
    offset = np.linspace(-0.04, 0.04, n_sites)[site_idx]
    deficit = np.where(np.isin(labels, PLANTED_REGIONS), PLANTED_D * SD_BETWEEN, 0.0) * gain
    pre = (base[None] + offset[:, None] - 0.001 * (age[:, None] - 45) + rng.normal(0, SD_BETWEEN, (n_subjects, len(names)))
           + np.outer(case, deficit))

    def z(v):
        v = np.asarray(v, float)
        return (v - v[case].mean()) / (v[case].std() or 1.0)

    pred_cols = np.isin(labels, PREDICTOR_REGIONS)
    assoc_cols = np.isin(labels, ASSOCIATION_REGIONS)
    # subject traits shared by the regions of a planted predictor / biomarker association: a
    # factor common to a few regions survives ReHo's measurement noise, one region's own value not
    pre += gain * (np.outer(rng.normal(0, PREDICTOR_TRAIT_SD, n_subjects), pred_cols)
                   + np.outer(rng.normal(0, CRP_TRAIT_SD, n_subjects), assoc_cols))
    improvement = 0.45 + gain * PREDICTOR_WEIGHT * z(pre[:, pred_cols].mean(1)) + rng.normal(0, 0.08, n_subjects)
    improvement = np.clip(improvement, -0.2, 1.0)
    hamd_pre = np.where(case, np.clip(rng.normal(24, 4, n_subjects), 14, 40), rng.integers(0, 7, n_subjects))
    hamd_post = np.where(case, hamd_pre * (1 - improvement), rng.integers(0, 7, n_subjects))
    change = np.where(np.isin(labels, CHANGE_REGIONS), CHANGE_DZ * SD_WITHIN, 0.0) * gain
    coupling = np.where(np.isin(labels, COUPLING_REGIONS), COUPLING * SD_WITHIN, 0.0) * gain
    # the coupling follows the symptom change (follow-up - baseline): a larger drop, a larger change
    drop = z(hamd_pre - hamd_post)
    post = pre + rng.normal(0, SD_WITHIN, pre.shape) + np.outer(case, change) + np.outer(case * drop, coupling)
    # a biomarker (mg/l) tracking the baseline value in ASSOCIATION_REGIONS, in every subject
    a_res = pre[:, assoc_cols].mean(1) - offset
    participants["crp"] = np.round(3 + gain * 1.5 * (a_res - a_res.mean()) / a_res.std()
                                   + rng.normal(0, CRP_NOISE, n_subjects), 2)
    control_rank = np.cumsum(~case) - 1
    followed = np.where(case, rng.random(n_subjects) >= FOLLOWUP_MISSING, control_rank % 3 == 0)
    pre_df = pd.DataFrame(np.clip(pre, 0.05, 0.95), index=pids, columns=names)
    post_df = pd.DataFrame(np.clip(post, 0.05, 0.95), index=pids, columns=names).loc[followed]
    ses_rows = [dict(participant_id=p, session=BASELINE, hamd=int(round(h))) for p, h in zip(pids, hamd_pre)]
    ses_rows += [dict(participant_id=p, session=FOLLOWUP, hamd=int(round(h)))
                 for p, h, f in zip(pids, hamd_post, followed) if f]
    truth = pd.DataFrame(dict(region=names, planted_change_dz=change / SD_WITHIN,
                              planted_coupling=coupling > 0, planted_predictor=pred_cols & (gain > 0),
                              planted_crp=assoc_cols & (gain > 0)))
    return dict(participants=participants, sessions=pd.DataFrame(ses_rows), pre=pre_df, post=post_df, truth=truth)


def write_longitudinal_tables(out: str | Path, n_subjects: int = 60, seed: int = 0, n_sites: int = 3,
                              null: bool = False, noise: float = 0.02) -> dict[str, Path]:
    """A tables-only pre / post cohort: participants.tsv, ``reho.tsv`` (participant_id, session,
    regions: homogeneity + N(0, ``noise``) measurement noise), ``sessions.tsv`` (long) and truth/."""
    from rviflow.preprocess.parcellate import DK_LABELS, read_labels

    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    lab = read_labels(DK_LABELS)
    sim = simulate(list(lab["name"]), list(lab["label"]), n_subjects, seed, n_sites, null)
    rng = np.random.default_rng([seed, 77])
    rows = []
    for ses, df in ((BASELINE, sim["pre"]), (FOLLOWUP, sim["post"])):
        v = df + rng.normal(0, noise, df.shape)
        v.insert(0, "session", ses)
        rows.append(v.rename_axis("participant_id").reset_index())
    pd.concat(rows, ignore_index=True).round(6).to_csv(out / "reho.tsv", sep="\t", index=False)
    sim["participants"].to_csv(out / "participants.tsv", sep="\t", index=False)
    sim["sessions"].to_csv(out / "sessions.tsv", sep="\t", index=False)
    _write_truth(out / "truth", sim)
    return dict(participants=out / "participants.tsv", tables={"reho": out / "reho.tsv"},
                sessions=out / "sessions.tsv", truth=out / "truth")


def _write_truth(truth: Path, sim: dict) -> None:
    sim["truth"].assign(measure="reho").to_csv(truth / "longitudinal.tsv", sep="\t", index=False)
    pre = sim["pre"].assign(session=BASELINE)
    post = sim["post"].assign(session=FOLLOWUP)
    pd.concat([pre, post]).rename_axis("participant_id").to_csv(truth / "homogeneity.tsv", sep="\t")


def write_longitudinal_cohort(out: str | Path, n_subjects: int = 30, seed: int = 0, n_sites: int = 3,
                              n_timepoints: int = 200, tr: float = 2.0, voxel_mm: float = 4.0) -> dict[str, Path]:
    """BIDS (ses-pre / ses-post, sessions.tsv per subject) + fMRIPrep-style derivatives of the
    simulated cohort (ReHo's BOLD model of :mod:`rviflow.synth.cohort`; no ASL, no FreeSurfer).

    Returns the paths bids, fmriprep, truth, participants.
    """
    import nibabel as nib

    from rviflow.io.bids import write_json
    from rviflow.synth.cohort import MOTION_COLUMNS, _bold, _confounds, synthetic_grid, write_bold_scan

    out = Path(out)
    bids, fmriprep, truth = out / "bids", out / "derivatives" / "fmriprep", out / "truth"
    for d in (bids, fmriprep, truth):
        d.mkdir(parents=True, exist_ok=True)
    atlas, labels, mask = synthetic_grid(voxel_mm)
    grid = np.asarray(atlas.dataobj)
    sim = simulate(list(labels["name"]), list(labels["label"]), n_subjects, seed, n_sites)
    sim["participants"].to_csv(bids / "participants.tsv", sep="\t", index=False)
    write_json(bids / "dataset_description.json", {"Name": "rviflow synthetic pre/post cohort", "BIDSVersion": "1.9.0",
                                                   "DatasetType": "raw", "License": "CC0"})
    write_json(fmriprep / "dataset_description.json", {
        "Name": "fMRIPrep-style synthetic derivatives", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "rviflow synth (fMRIPrep layout)"}]})
    hdr_mask = nib.Nifti1Image(mask.astype(np.uint8), atlas.affine)
    sessions = sim["sessions"]
    for i, pid in enumerate(sim["participants"]["participant_id"]):
        mine = sessions[sessions["participant_id"] == pid]
        (bids / pid).mkdir(exist_ok=True)
        mine.assign(session_id="ses-" + mine["session"])[["session_id", "hamd"]].to_csv(
            bids / pid / f"{pid}_sessions.tsv", sep="\t", index=False)
        for j, ses in enumerate(mine["session"]):
            a = (sim["pre"] if ses == BASELINE else sim["post"]).loc[pid].to_numpy()
            srng = np.random.default_rng([seed, i, j])
            lut = np.full(int(grid.max()) + 1, 0.2)
            lut[labels["index"].to_numpy()] = a
            conf = _confounds(srng, n_timepoints, motion_scale=0.02 + 0.02 * srng.random())
            img = nib.Nifti1Image(_bold(srng, lut[grid], mask, conf[list(MOTION_COLUMNS)].to_numpy()), atlas.affine)
            write_bold_scan(bids, fmriprep, pid, ses, img, hdr_mask, conf, tr)
    _write_truth(truth, sim)
    (truth / "README.md").write_text(
        "Planted truth of this synthetic pre/post cohort (rviflow demo --design longitudinal).\n\n"
        "- longitudinal.tsv: per region the planted patients' change (d_z of the homogeneity change),\n"
        "  whether the change tracks the symptom change (planted_coupling) and whether the baseline\n"
        "  value predicts the response (planted_predictor).\n"
        "- homogeneity.tsv: each subject's homogeneity parameter per session.\n"
        f"seed={seed} subjects={n_subjects} sites={n_sites} timepoints={n_timepoints} tr={tr}\n")
    return dict(bids=bids, fmriprep=fmriprep, truth=truth, participants=bids / "participants.tsv")
