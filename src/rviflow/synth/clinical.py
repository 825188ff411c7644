"""Synthetic cortical thickness (FreeSurfer stats) and symptom scores for the synthetic cohort.

Thickness of cortical region r in subject s (mm):

    th_sr = base_r + site offset + age slope * (age - 45) + N(0, SD_THICKNESS)

lowered in MDD by ``THICKNESS_PLANTED_D * SD_THICKNESS`` in the regions where ReHo is planted,
a standardised deficit a third of ReHo's (as Kochunov, Hussain et al. 2025 found), written as
FreeSurfer 7 ``?h.aparc.stats`` under ``derivatives/fmriprep/sourcedata/freesurfer/sub-*/stats``
(where fMRIPrep keeps its FreeSurfer run) and as measure=thickness rows of truth/effects.tsv.

Symptom severity (``hamd``, HAM-D 17) of a patient tracks the patient's own ReHo deficit: the
mean, over the planted regions, of its homogeneity residual after site and age, scaled so it
explains about half of the score's variance; controls score 0-6.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rviflow.measures.thickness import format_aparc_stats

THICKNESS_PLANTED_D = -0.4
SD_THICKNESS = 0.12


def write_clinical(fmriprep: Path, bids: Path, participants: pd.DataFrame, homogeneity: pd.DataFrame,
                   labels: pd.DataFrame, planted: np.ndarray, seed: int) -> pd.DataFrame:
    """Write FreeSurfer stats + add ``hamd`` to participants.tsv; returns thickness truth rows."""
    rng = np.random.default_rng([seed, 7717])
    cortex = labels[labels["structure"] == "cortex"].reset_index(drop=True)
    plant = np.isin(cortex["name"], labels.loc[planted, "name"])
    base = 2.0 + 1.2 * rng.random(len(cortex))
    sites = sorted(participants["site"].unique())
    offset = dict(zip(sites, np.linspace(-0.08, 0.08, len(sites))))
    fs = fmriprep / "sourcedata" / "freesurfer"
    for _, row in participants.iterrows():
        srng = np.random.default_rng([seed, 7718, int(row["participant_id"][4:])])
        th = base + offset[row["site"]] - 0.004 * (row["age"] - 45) + srng.normal(0, SD_THICKNESS, len(cortex))
        if row["diagnosis"] == "MDD":
            th = th + np.where(plant, THICKNESS_PLANTED_D * SD_THICKNESS, 0.0)
        stats_dir = fs / row["participant_id"] / "stats"
        stats_dir.mkdir(parents=True, exist_ok=True)
        for hemi, h in (("lh", "L"), ("rh", "R")):
            sel = (cortex["hemisphere"] == h).to_numpy()
            text = format_aparc_stats(hemi, row["participant_id"], dict(zip(cortex.loc[sel, "label"], th[sel])), srng)
            (stats_dir / f"{hemi}.aparc.stats").write_text(text)

    # each patient's ReHo deficit: planted-region homogeneity residual after site and age
    h = homogeneity.loc[participants["participant_id"], labels.loc[planted, "name"]].mean(1).to_numpy()
    X = np.column_stack([np.ones(len(h)), participants["age"].to_numpy(float),
                         *(participants["site"].eq(s).to_numpy(float) for s in sites[1:]),
                         participants["diagnosis"].eq("MDD").to_numpy(float)])
    resid = h - X @ np.linalg.lstsq(X, h, rcond=None)[0]
    z = resid / (resid.std() or 1.0)
    case = participants["diagnosis"].eq("MDD").to_numpy()
    hamd = np.where(case, 20 - 3.5 * z + rng.normal(0, 3.5, len(h)), rng.integers(0, 7, len(h)))
    participants["hamd"] = np.clip(np.round(hamd), 0, 52).astype(int)
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    desc = bids / "participants.json"
    if desc.exists():
        import json

        meta = json.loads(desc.read_text())
        meta["hamd"] = {"Description": "Hamilton Depression Rating Scale (17 items) total", "Units": "score"}
        desc.write_text(json.dumps(meta, indent=2) + "\n")
    return pd.DataFrame(dict(measure="thickness", region=cortex["name"],
                             planted_d=np.where(plant, THICKNESS_PLANTED_D, 0.0)))
