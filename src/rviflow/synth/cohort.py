"""Synthetic cohort with a planted truth: BIDS raw + fMRIPrep-style derivatives.

Each subject's BOLD at voxel v, time t in region r is

    x(v, t) = sqrt(a_sr) * S(v, t) + sqrt(1 - a_sr) * E(v, t) + motion contamination

with S white noise smoothed in space (a signal shared by neighbours) and E independent white
noise, both unit variance, so the local homogeneity (ReHo) of region r rises with a_sr. The
homogeneity a_sr = base_r + site offset + age slope * (age - 45) + N(0, SD_BETWEEN), lowered for
MDD subjects by ``planted_d * SD_BETWEEN`` in a planted set of regions (planted_d is thus the
standardised effect on the homogeneity parameter; ReHo measures it with noise, so the d
recovered from ReHo is smaller in magnitude). The planted standardised
effect is written to ``truth/effects.tsv`` (measure, region, planted_d; 0 where nothing is
planted) and every subject's a_sr to ``truth/homogeneity.tsv``.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from rviflow.io.bids import write_json
from rviflow.preprocess.parcellate import default_atlas, read_labels, resample_labels

TASK = "rest"
SPACE = "MNI152NLin2009cAsym"
#: regions with lowered homogeneity in MDD (default-mode / frontal / limbic, both hemispheres)
PLANTED_REGIONS = (
    "medialorbitofrontal", "rostralanteriorcingulate", "posteriorcingulate", "precuneus",
    "superiorfrontal", "insula",
)
PLANTED_D = -1.2
SD_BETWEEN = 0.1
MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


def synthetic_grid(voxel_mm: float = 4.0) -> tuple[nib.Nifti1Image, pd.DataFrame, np.ndarray]:
    """The default atlas on a coarse MNI grid, its label table and a filled brain mask."""
    atlas_path, labels_path = default_atlas()
    atlas = nib.load(atlas_path)
    shape0 = np.array(atlas.shape[:3])
    shape = tuple(int(s) for s in np.ceil(shape0 * np.abs(np.diag(atlas.affine)[:3]) / voxel_mm))
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = atlas.affine[:3, 3]
    target = nib.Nifti1Image(np.zeros(shape, dtype=np.int16), affine)
    grid = resample_labels(atlas, target)
    mask = ndimage.binary_fill_holes(ndimage.binary_dilation(grid > 0, iterations=1))
    return nib.Nifti1Image(grid.astype(np.int16), affine), read_labels(labels_path), mask


def _confounds(rng: np.random.Generator, n_t: int, motion_scale: float) -> pd.DataFrame:
    """fMRIPrep-named confounds: 24 motion terms, FD, std DVARS, WM, CSF, global signal."""
    mot = np.cumsum(rng.normal(0, motion_scale, (n_t, 6)), axis=0)
    mot[:, 3:] *= 0.01  # rotations in radians
    df = pd.DataFrame(mot, columns=MOTION_COLUMNS)
    for c in MOTION_COLUMNS:
        d = np.r_[np.nan, np.diff(df[c].to_numpy())]
        df[f"{c}_derivative1"] = d
        df[f"{c}_power2"] = df[c] ** 2
        df[f"{c}_derivative1_power2"] = d**2
    diffs = np.abs(np.diff(mot, axis=0))
    fd = diffs[:, :3].sum(1) + 50.0 * diffs[:, 3:].sum(1)
    df["framewise_displacement"] = np.r_[np.nan, fd]
    df["std_dvars"] = np.r_[np.nan, 1.0 + np.abs(rng.normal(0, 0.1, n_t - 1))]
    df["dvars"] = df["std_dvars"] * 20
    for c in ("white_matter", "csf", "global_signal"):
        df[c] = rng.normal(0, 1, n_t).cumsum() * 0.1
        df[f"{c}_derivative1"] = np.r_[np.nan, np.diff(df[c].to_numpy())]
        df[f"{c}_power2"] = df[c] ** 2
        df[f"{c}_derivative1_power2"] = df[f"{c}_derivative1"] ** 2
    return df


def _bold(rng, homog_grid: np.ndarray, mask: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """(X, Y, Z, T) int16-ready BOLD with voxelwise homogeneity ``homog_grid``."""
    n_t = motion.shape[0]
    shape = mask.shape
    shared = rng.standard_normal(shape + (n_t,), dtype=np.float32)
    shared = ndimage.gaussian_filter(shared, sigma=(1.2, 1.2, 1.2, 0), mode="wrap")
    shared /= shared[mask].std()
    noise = rng.standard_normal(shape + (n_t,), dtype=np.float32)
    a = homog_grid[..., None].astype(np.float32)
    x = np.sqrt(a) * shared + np.sqrt(1 - a) * noise
    # head-motion contamination with a spatially varying weight (removed by denoising)
    weights = rng.normal(0, 0.3, shape + (1,)).astype(np.float32)
    x += weights * ((motion[:, 0] - motion[:, 0].mean()) / (motion[:, 0].std() + 1e-6))[None, None, None, :]
    bold = 1000.0 + 20.0 * x
    bold[~mask] = 0
    return np.round(bold).astype(np.int16)


def write_bold_scan(bids: Path, fmriprep: Path, pid: str, ses: str, img: nib.Nifti1Image, mask: nib.Nifti1Image,
                    confounds: pd.DataFrame, tr: float) -> None:
    """One resting-state run in BIDS (raw BOLD + sidecar) and in fMRIPrep's layout (preprocessed
    BOLD, brain mask, confounds with their JSON), in session ``ses`` ("" for none)."""
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr
    where = Path(pid, f"ses-{ses}") if ses else Path(pid)
    raw, der = bids / where / "func", fmriprep / where / "func"
    raw.mkdir(parents=True, exist_ok=True)
    der.mkdir(parents=True, exist_ok=True)
    stem = f"{pid}_ses-{ses}_task-{TASK}" if ses else f"{pid}_task-{TASK}"
    nib.save(img, raw / f"{stem}_bold.nii.gz")
    write_json(raw / f"{stem}_bold.json", {"RepetitionTime": tr, "TaskName": TASK})
    pre = f"{stem}_space-{SPACE}"
    nib.save(img, der / f"{pre}_desc-preproc_bold.nii.gz")
    write_json(der / f"{pre}_desc-preproc_bold.json", {"RepetitionTime": tr, "TaskName": TASK, "SkullStripped": False})
    nib.save(mask, der / f"{pre}_desc-brain_mask.nii.gz")
    confounds.to_csv(der / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a")
    write_json(der / f"{stem}_desc-confounds_timeseries.json", {c: {"Description": c} for c in confounds.columns})


def write_cohort(
    out: str | Path, n_subjects: int = 24, seed: int = 0, n_sites: int = 3, n_timepoints: int = 100,
    tr: float = 2.0, voxel_mm: float = 4.0, asl: bool = True,
) -> dict[str, Path]:
    """Write the synthetic cohort under ``out``.

    Layout: ``out/bids`` (raw BIDS with participants.tsv), ``out/derivatives/fmriprep``
    (preprocessed BOLD in MNI152NLin2009cAsym, brain mask, confounds TSV + JSON) and
    ``out/truth`` (planted effects and per-subject homogeneity). With ``asl`` each subject also
    gets BIDS-ASL in ``bids/sub-*/perf/`` and the CBF truth (:mod:`rviflow.synth.asl`).

    Returns the paths of the three directories and of participants.tsv.
    """
    if n_subjects < 4:
        raise ValueError("a synthetic cohort needs at least 4 subjects (2 per group)")
    out = Path(out)
    rng = np.random.default_rng(seed)
    bids, fmriprep, truth = out / "bids", out / "derivatives" / "fmriprep", out / "truth"
    for d in (bids, fmriprep, truth):
        d.mkdir(parents=True, exist_ok=True)
    atlas, labels, mask = synthetic_grid(voxel_mm)
    grid = np.asarray(atlas.dataobj)
    names = labels["name"].tolist()
    planted = np.array([lab in PLANTED_REGIONS for lab in labels["label"]])
    planted_d = np.where(planted, PLANTED_D, 0.0)
    base = 0.35 + 0.3 * rng.random(len(names))
    site_offset = np.linspace(-0.04, 0.04, n_sites)

    sites = [f"site{(i % n_sites) + 1}" for i in range(n_subjects)]
    diagnosis = ["MDD" if (i // n_sites) % 2 == 0 else "HC" for i in range(n_subjects)]
    ages = np.round(rng.uniform(20, 65, n_subjects), 1)
    sex = rng.choice(["F", "M"], n_subjects)
    pids = [f"sub-{i + 1:03d}" for i in range(n_subjects)]
    participants = pd.DataFrame(dict(participant_id=pids, diagnosis=diagnosis, age=ages, sex=sex, site=sites))
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    write_json(bids / "participants.json", {
        "diagnosis": {"Description": "clinical group", "Levels": {"MDD": "major depressive disorder",
                                                                  "HC": "healthy control"}},
        "age": {"Description": "age at scan", "Units": "year"},
        "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
        "site": {"Description": "acquisition site"},
    })
    write_json(bids / "dataset_description.json", {"Name": "rviflow synthetic cohort", "BIDSVersion": "1.9.0",
                                                   "DatasetType": "raw", "License": "CC0"})
    write_json(fmriprep / "dataset_description.json", {
        "Name": "fMRIPrep-style synthetic derivatives", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "rviflow synth (fMRIPrep layout)"}],
    })

    homog_rows = []
    hdr_mask = nib.Nifti1Image(mask.astype(np.uint8), atlas.affine)
    for i, pid in enumerate(pids):
        srng = np.random.default_rng([seed, i])
        a = (base + site_offset[int(sites[i][4:]) - 1] - 0.001 * (ages[i] - 45)
             + srng.normal(0, SD_BETWEEN, len(names)))
        if diagnosis[i] == "MDD":
            a = a + planted_d * SD_BETWEEN
        a = np.clip(a, 0.05, 0.95)
        homog_rows.append(pd.Series(a, index=names, name=pid))
        lut = np.full(int(grid.max()) + 1, 0.2)
        lut[labels["index"].to_numpy()] = a
        homog = lut[grid]
        conf = _confounds(srng, n_timepoints, motion_scale=0.02 + 0.02 * srng.random())
        data = _bold(srng, homog, mask, conf[list(MOTION_COLUMNS)].to_numpy())
        write_bold_scan(bids, fmriprep, pid, "", nib.Nifti1Image(data, atlas.affine), hdr_mask, conf, tr)

    truth_rows = [pd.DataFrame(dict(measure="reho", region=names, planted_d=planted_d))]
    if asl:  # BIDS-ASL from a known CBF map, hypoperfusion where ReHo is planted (rviflow.synth.asl)
        from rviflow.synth.asl import write_asl_cohort

        truth_rows.append(write_asl_cohort(bids, truth, atlas, labels, mask, participants, seed, SPACE))
    from rviflow.synth.clinical import write_clinical  # FreeSurfer thickness stats + hamd (rviflow.synth.clinical)

    truth_rows.append(write_clinical(fmriprep, bids, participants, pd.DataFrame(homog_rows), labels, planted, seed))
    pd.concat(truth_rows, ignore_index=True).to_csv(truth / "effects.tsv", sep="\t", index=False)
    pd.DataFrame(homog_rows).rename_axis("participant_id").to_csv(truth / "homogeneity.tsv", sep="\t")
    (truth / "README.md").write_text(
        "Planted truth of this synthetic cohort (rviflow synth).\n\n"
        "- effects.tsv: standardised MDD - control effect on regional homogeneity (planted_d).\n"
        "- homogeneity.tsv: each subject's homogeneity parameter a per region.\n"
        "- effects.tsv rows with measure=thickness: standardised MDD - control effect on cortical\n"
        "  thickness (derivatives/fmriprep/sourcedata/freesurfer/sub-*/stats/?h.aparc.stats);\n"
        "  participants.tsv hamd: symptom score tracking each patient's ReHo deficit.\n"
        + ("- effects.tsv rows with measure=cbf: standardised MDD - control effect on regional CBF;\n"
           "  cbf.tsv: each subject's regional CBF (ml/100 g/min); sub-*_desc-truth_cbf.nii.gz: CBF maps\n"
           "  (and _desc-truth_att for multi-PLD subjects).\n" if asl else "")
        + f"seed={seed} subjects={n_subjects} sites={n_sites} timepoints={n_timepoints} tr={tr}\n"
    )
    return dict(bids=bids, fmriprep=fmriprep, truth=truth, participants=bids / "participants.tsv")
