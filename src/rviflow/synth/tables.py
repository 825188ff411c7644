"""Synthetic regional tables with a planted truth: the cohort statistics' input without images.

What consortia share (ENIGMA sites, UK Biobank IDPs) is a value per subject and region, not
images; a tables-only run (config without ``fmriprep_dir``) analyses such tables alone. Per
subject s and region r of the default Desikan-Killiany atlas:

    value_sr = base_r + site offset + age slope * (age - 45) + N(0, SD)

lowered in MDD by ``planted_d * SD`` in the planted regions, for

- ``reho`` (Kendall's W-like, SD 0.02): planted_d = :data:`rviflow.synth.cohort.PLANTED_D` in
  :data:`rviflow.synth.cohort.PLANTED_REGIONS`, every region (83);
- ``cbf`` (ml/100 g/min, SD 5): :data:`rviflow.synth.asl.CBF_PLANTED_D` in its regions;
- ``thickness`` (mm, SD :data:`rviflow.synth.clinical.SD_THICKNESS`), cortical regions (68), in the
  ENIGMA ``CorticalMeasuresENIGMA_ThickAvg.csv`` format (SubjID without the ``sub-`` prefix):
  :data:`rviflow.synth.clinical.THICKNESS_PLANTED_D` in the ReHo regions.

participants.tsv has diagnosis, age, sex, site and ``hamd`` (patients' scores track their own
ReHo deficit, as in :mod:`rviflow.synth.clinical`); ``truth/effects.tsv`` the planted d.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rviflow.preprocess.parcellate import DK_LABELS, read_labels
from rviflow.synth.cohort import PLANTED_D, PLANTED_REGIONS
from rviflow.synth.asl import CBF_PLANTED_D, CBF_PLANTED_REGIONS
from rviflow.synth.clinical import SD_THICKNESS, THICKNESS_PLANTED_D

#: measure -> (base range, SD between subjects, site offset range, age slope per year, planted d, planted regions)
MEASURES = {
    "reho": ((0.25, 0.45), 0.02, 0.01, -0.0002, PLANTED_D, PLANTED_REGIONS),
    "cbf": ((45.0, 65.0), 5.0, 3.0, -0.2, CBF_PLANTED_D, CBF_PLANTED_REGIONS),
    "thickness": ((2.0, 3.2), SD_THICKNESS, 0.08, -0.004, THICKNESS_PLANTED_D, PLANTED_REGIONS),
}


def write_table_cohort(out: str | Path, n_subjects: int = 60, seed: int = 0, n_sites: int = 3) -> dict[str, Path]:
    """Write participants.tsv, ``reho.tsv``, ``cbf.tsv``, the ENIGMA thickness CSV and truth/ under ``out``.

    Returns the paths: participants, tables ({measure: path} for config cohort.tables), enigma
    (config cohort.thickness.enigma_table) and truth (folder with effects.tsv).
    """
    if n_subjects < 4 * n_sites:
        raise ValueError(f"a synthetic table cohort over {n_sites} sites needs at least {4 * n_sites} subjects")
    out = Path(out)
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 9901])
    labels = read_labels(DK_LABELS)
    pids = [f"sub-{i + 1:03d}" for i in range(n_subjects)]
    site_idx = np.arange(n_subjects) % n_sites
    case = (np.arange(n_subjects) // n_sites) % 2 == 0
    age = np.round(rng.uniform(20, 65, n_subjects), 1)
    participants = pd.DataFrame(dict(participant_id=pids, diagnosis=np.where(case, "MDD", "HC"), age=age,
                                     sex=rng.choice(["F", "M"], n_subjects), site=[f"site{i + 1}" for i in site_idx]))
    paths, truth_rows, values = {}, [], {}
    for measure, (base_range, sd, site_range, slope, d, regions) in MEASURES.items():
        lab = labels if measure != "thickness" else labels[labels["structure"] == "cortex"]
        planted = lab["label"].isin(regions).to_numpy()
        base = rng.uniform(*base_range, len(lab))
        offset = np.linspace(-site_range, site_range, n_sites)[site_idx]
        v = (base[None, :] + offset[:, None] + slope * (age[:, None] - 45)
             + rng.normal(0, sd, (n_subjects, len(lab))) + np.outer(case, np.where(planted, d * sd, 0.0)))
        values[measure] = pd.DataFrame(v, index=pids, columns=lab["name"].to_numpy())
        truth_rows.append(pd.DataFrame(dict(measure=measure, region=lab["name"], planted_d=np.where(planted, d, 0.0))))
    for measure in ("reho", "cbf"):
        paths[measure] = out / f"{measure}.tsv"
        values[measure].round(6).rename_axis("participant_id").to_csv(paths[measure], sep="\t")
    enigma = values["thickness"].round(4)
    enigma.columns = [f"{c}_thickavg" for c in enigma.columns]
    enigma.insert(0, "SubjID", [p.removeprefix("sub-") for p in pids])
    for h in "LR":
        enigma[f"{h}Thickness"] = enigma[[c for c in enigma.columns if c.startswith(f"{h}_")]].mean(1).round(4)
    enigma["ICV"] = np.round(rng.normal(1.5e6, 1.2e5, n_subjects))
    enigma_path = out / "CorticalMeasuresENIGMA_ThickAvg.csv"
    enigma.to_csv(enigma_path, index=False)

    # each patient's ReHo deficit: planted-region residual after site and age -> symptom score
    planted = [n for n, lab in zip(labels["name"], labels["label"]) if lab in PLANTED_REGIONS]
    h = values["reho"][planted].mean(1).to_numpy()
    X = np.column_stack([np.ones(n_subjects), age, *(site_idx == s for s in range(1, n_sites)), case])
    resid = h - X @ np.linalg.lstsq(X.astype(float), h, rcond=None)[0]
    z = resid / (resid.std() or 1.0)
    hamd = np.where(case, 20 - 3.5 * z + rng.normal(0, 3.5, n_subjects), rng.integers(0, 7, n_subjects))
    participants["hamd"] = np.clip(np.round(hamd), 0, 52).astype(int)
    participants.to_csv(out / "participants.tsv", sep="\t", index=False)
    pd.concat(truth_rows, ignore_index=True).to_csv(truth / "effects.tsv", sep="\t", index=False)
    return dict(participants=out / "participants.tsv", tables=paths, enigma=enigma_path, truth=truth)
