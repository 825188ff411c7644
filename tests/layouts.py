"""Cohorts in real BIDS / fMRIPrep layouts, with images generated at test time.

The layouts, sidecars and participants tables come from files nobody here wrote
(tests/data/real_layouts/, see its README: bids-standard/bids-examples ds000001-fmriprep, ds001,
7t_trt); the confounds are nilearn's real fMRIPrep files (its package data) or their columns.
Only the images are synthetic: a BOLD whose local homogeneity in region r is a_sr (as
rviflow.synth.cohort), so a planted group difference in a set of regions is recoverable by ReHo.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from rviflow.io.bids import bids_name, parse_entities, write_json
from rviflow.synth.cohort import PLANTED_REGIONS, SD_BETWEEN, _bold, _confounds, synthetic_grid

DATA = Path(__file__).parent / "data" / "real_layouts"
SPACE = "MNI152NLin2009cAsym"


def nilearn_confounds(kind: str = "regressors") -> Path:
    """nilearn's real fMRIPrep confounds: 'regressors' (fMRIPrep 1.4-20.1 naming, 189 columns) or
    'timeseries' (21.x naming, 84 columns); 30 rows each, n/a only in the first row."""
    import nilearn.interfaces.fmriprep as fp

    name = "test_desc-confounds_regressors.tsv" if kind == "regressors" else "test-v21_desc-confounds_timeseries.tsv"
    return Path(fp.__file__).parent / "data" / name


def lengthen(path: Path, times: int) -> pd.DataFrame:
    """A real confounds file repeated ``times`` times (30 rows are too short to band-pass); the
    first-row n/a of each repeat after the first takes the next row's value, as nilearn fills row 0."""
    df = pd.read_csv(path, sep="\t", na_values="n/a")
    out = pd.concat([df] * times, ignore_index=True)
    for k in range(1, times):
        i = k * len(df)
        out.iloc[i] = out.iloc[i].fillna(out.iloc[i + 1])
    return out


def camelcase(df: pd.DataFrame) -> pd.DataFrame:
    """fMRIPrep 1.2-1.3 column names (CamelCase) for a modern confounds table."""
    names = {"framewise_displacement": "FramewiseDisplacement", "white_matter": "WhiteMatter", "csf": "CSF",
             "global_signal": "GlobalSignal", "std_dvars": "stdDVARS", "dvars": "non-stdDVARS",
             "trans_x": "X", "trans_y": "Y", "trans_z": "Z", "rot_x": "RotX", "rot_y": "RotY", "rot_z": "RotZ"}
    keep = [c for c in df.columns if c in names]
    return df[keep].rename(columns=names)


def fmriprep_names(raw_func_files: list[str], space: str = SPACE, res: str = "") -> list[dict]:
    """Entities of the preprocessed BOLD fMRIPrep makes from each raw ``*_bold.nii.gz`` name."""
    out = []
    for f in raw_func_files:
        ents = {k: v for k, v in parse_entities(Path(f).name).items()}
        ents.update(space=space, desc="preproc")
        if res:
            ents["res"] = res
        out.append(ents)
    return out


def ds000001_scans() -> list[dict]:
    """Entities of the preprocessed BOLD in bids-examples ds000001-fmriprep (run-1..3, res-2)."""
    names = [Path(n).name for n in (DATA / "ds000001-fmriprep_func_files.txt").read_text().split()]
    return [parse_entities(n) | {"desc": "preproc"} for n in names if n.endswith("desc-preproc_bold.nii.gz")]


def write_cohort(root: Path, participants: pd.DataFrame, scans: list[dict], *, planted_sessions=None,
                 confounds: dict | Path | None = None, voxel_mm: float = 4.0, n_t: int = 60, tr: float = 2.0,
                 seed: int = 0, ext: str = ".nii.gz", bold_sidecar: dict | None = None,
                 coverage: dict | None = None, participants_text: str | None = None, planted_d: float = 1.2) -> dict:
    """BIDS root (participants.tsv) + fMRIPrep derivatives with one preprocessed BOLD per entry of
    ``scans`` (entities: sub, [ses], task, [acq], [run], space, [res]).

    participants : participant_id, diagnosis (MDD / HC rows get the planted effect / not)
    planted_sessions : sessions whose MDD scans carry the planted ReHo deficit (None = all)
    planted_d : the deficit in between-subject SDs of the homogeneity parameter
    confounds : a real confounds TSV for every scan, or {scan index: DataFrame} overrides (the
        rest synthetic); the BOLD has as many volumes as the confounds rows
    coverage : {acq label: fraction} keeps only the anterior fraction of the brain in that acq
    participants_text : participants.tsv written as is (messy values kept)
    """
    root = Path(root)
    bids, fmriprep = root / "bids", root / "derivatives" / "fmriprep"
    for d in (bids, fmriprep):
        d.mkdir(parents=True, exist_ok=True)
    if participants_text is not None:
        (bids / "participants.tsv").write_text(participants_text)
    else:
        participants.to_csv(bids / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    write_json(bids / "dataset_description.json", {"Name": "real-layout test cohort", "BIDSVersion": "1.9.0"})
    write_json(fmriprep / "dataset_description.json", {"Name": "fMRIPrep", "BIDSVersion": "1.4.0",
                                                       "DatasetType": "derivative"})
    atlas, labels, mask = synthetic_grid(voxel_mm)
    grid = np.asarray(atlas.dataobj)
    rng = np.random.default_rng(seed)
    base = 0.35 + 0.3 * rng.random(len(labels))
    planted = np.array([lab in PLANTED_REGIONS for lab in labels["label"]])
    group = dict(zip(participants["participant_id"], participants["diagnosis"].astype(str).str.strip()))
    subject_a = {pid: np.clip(base + np.random.default_rng([seed, i]).normal(0, SD_BETWEEN, len(labels)), 0.05, 0.95)
                 for i, pid in enumerate(sorted(group))}
    for k, ents in enumerate(scans):
        pid = f"sub-{ents['sub']}"
        # seeded by the file name, so a scan is the same image in any cohort that has it
        srng = np.random.default_rng([seed, zlib.crc32(bids_name(ents, "bold", "").encode())])
        a = subject_a.get(pid, base).copy()
        if group.get(pid) == "MDD" and (planted_sessions is None or ents.get("ses") in planted_sessions):
            a = np.clip(a - planted_d * SD_BETWEEN * planted, 0.05, 0.95)
        lut = np.full(int(grid.max()) + 1, 0.2)
        lut[labels["index"].to_numpy()] = a
        m = mask.copy()
        if coverage and ents.get("acq") in coverage:  # a slab acquisition: anterior part only
            y = np.arange(m.shape[1])
            m[:, y < m.shape[1] * (1 - coverage[ents["acq"]]), :] = False
        conf = confounds.get(k) if isinstance(confounds, dict) else confounds
        if isinstance(conf, (str, Path)):
            conf = pd.read_csv(conf, sep="\t", na_values="n/a")
        if conf is None:
            conf = _confounds(srng, n_t, 0.03)
        motion_cols = [c for c in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "X", "Y", "Z", "RotX",
                                   "RotY", "RotZ") if c in conf][:6]
        motion = conf[motion_cols].fillna(0).to_numpy(float)
        data = _bold(srng, lut[grid], m, motion)
        img = nib.Nifti1Image(data, atlas.affine)
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = tr
        folder = fmriprep / pid / (f"ses-{ents['ses']}" if ents.get("ses") else "") / "func"
        folder.mkdir(parents=True, exist_ok=True)
        name = bids_name(ents, "bold", ext)
        nib.save(img, folder / name)
        write_json(folder / bids_name(ents, "bold", ".json"), bold_sidecar or {"RepetitionTime": tr})
        nib.save(nib.Nifti1Image(m.astype(np.uint8), atlas.affine), folder / bids_name({**ents, "desc": "brain"},
                                                                                         "mask", ext))
        base_ents = {k2: v for k2, v in ents.items() if k2 not in ("space", "res", "desc")}
        kind = "regressors" if isinstance(confounds, (str, Path)) and "regressors" in str(confounds) else "timeseries"
        if isinstance(conf, pd.DataFrame) and "confounds_kind" in conf.attrs:
            kind = conf.attrs["confounds_kind"]
        conf.to_csv(folder / bids_name(base_ents, f"desc-confounds_{kind}", ".tsv"), sep="\t", index=False,
                    na_rep="n/a")
    return dict(bids=bids, fmriprep=fmriprep, root=root)
