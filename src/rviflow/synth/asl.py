"""Synthetic BIDS-ASL for the synthetic cohort, made from a known CBF map by the forward model.

Each subject's CBF (ml/100 g/min) in grey-matter region r is

    CBF_sr = base_r + site offset − 0.1 · (age − 45) + N(0, CBF_SD_BETWEEN)

lowered for MDD subjects by ``CBF_PLANTED_D · CBF_SD_BETWEEN`` in :data:`CBF_PLANTED_REGIONS`
(a subset of the planted ReHo regions: hypoperfusion where ReHo is reduced); white matter in the
brain mask has 22 ml/100 g/min. ASL volumes come from :func:`rviflow.measures.cbf.kinetic.kinetic_signal`
(white-paper constants, T1 blood 1.65 s at 3 T) plus Gaussian noise, in template space (the
BOLD's 4 mm grid, ``space-<template>`` in the file name). Most subjects have single-PLD PCASL with
background suppression and an included or separate M0 (the separate one with a short TR, so it
needs the TR correction); every 8th subject (offset 3) has PASL QUIPSS II with 2-D slice timing,
every 8th (offset 5) multi-PLD PCASL, every 8th (offset 7) multi-TI PASL FAIR with Q2TIPS as
the official BIDS example asl003 (10 TIs 0.3-3.0 s × 1 pair, TI1 0.7 s, 2 background-suppression
pulses, a separate M0 with TR 6 s: at this noise a grey-matter SNR of about 1-2 per pair, the
case whose unbounded fit used to run away). Subjects with index divisible by 6 have one corrupted
label volume (the outlier rejection should drop it).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from rviflow.io.bids import write_json
from rviflow.measures.cbf.quantify import T1_TISSUE, labeling_efficiency
from rviflow.measures.cbf.kinetic import kinetic_signal

CBF_PLANTED_REGIONS = ("medialorbitofrontal", "posteriorcingulate", "precuneus", "superiorfrontal")
CBF_PLANTED_D = -1.5
CBF_SD_BETWEEN = 5.0
CBF_WM = 22.0
M0_VALUE = 1000.0
NOISE_SD = 1.0  #: per-volume noise, in M0 units × 1000 (ΔM in grey matter is ~6)
SLICE_STEP = 0.01  #: s between 2-D slices


def _protocol(i: int) -> dict:
    """Acquisition of subject index i (see the module docstring)."""
    if i % 8 == 3:
        return dict(kind="pasl", plds=[1.8] * 4, bolus=0.8, m0="Included", bs=0)
    if i % 8 == 5:
        return dict(kind="multipld", plds=[0.5, 1.0, 1.5, 2.0, 2.5], bolus=1.8, m0="Separate", bs=0)
    if i % 8 == 7:
        return dict(kind="multiti", plds=[round(0.3 * k, 1) for k in range(1, 11)], bolus=0.7, m0="Separate", bs=2,
                    m0_tr=6.0)
    return dict(kind="pcasl", plds=[1.8] * 4, bolus=1.8, m0="Included" if i % 2 == 0 else "Separate", bs=2)


def write_asl_cohort(bids: Path, truth: Path, atlas: nib.Nifti1Image, labels: pd.DataFrame, mask: np.ndarray,
                     participants: pd.DataFrame, seed: int, space: str) -> pd.DataFrame:
    """Write ``bids/sub-*/perf/*`` for every participant and the CBF truth; returns the truth rows.

    Truth: ``truth/sub-*_desc-truth_cbf.nii.gz`` (and ``_desc-truth_att`` for multi-PLD),
    ``truth/cbf.tsv`` (regional CBF per subject) and rows with measure=cbf appended to
    ``truth/effects.tsv`` by the caller.
    """
    grid = np.asarray(atlas.dataobj)
    names = labels["name"].tolist()
    planted = np.array([lab in CBF_PLANTED_REGIONS for lab in labels["label"]])
    rng = np.random.default_rng([seed, 4242])
    base = 50.0 + 20.0 * rng.random(len(names))
    sites = sorted(participants["site"].unique())
    site_offset = dict(zip(sites, np.linspace(-3, 3, len(sites))))
    rows = []
    for i, row in participants.reset_index(drop=True).iterrows():
        srng = np.random.default_rng([seed, i, 7])
        pid = row["participant_id"]
        cbf_r = base + site_offset[row["site"]] - 0.1 * (row["age"] - 45) + srng.normal(0, CBF_SD_BETWEEN, len(names))
        if row["diagnosis"] == "MDD":
            cbf_r = cbf_r + np.where(planted, CBF_PLANTED_D * CBF_SD_BETWEEN, 0.0)
        rows.append(pd.Series(cbf_r, index=names, name=pid))
        lut = np.full(int(grid.max()) + 1, CBF_WM)
        lut[labels["index"].to_numpy()] = cbf_r
        cbf = np.where(mask, lut[grid], 0.0)
        att = np.where(mask, np.where(grid > 0, 1.0, 1.3) + srng.normal(0, 0.05, mask.shape), 1.0)
        _write_series(bids, truth, pid, space, atlas.affine, cbf, att, mask, _protocol(i), srng, corrupt=i % 6 == 0)
    table = pd.DataFrame(rows).rename_axis("participant_id")
    table.to_csv(truth / "cbf.tsv", sep="\t", float_format="%.3f")
    return pd.DataFrame(dict(measure="cbf", region=names,
                             planted_d=np.where(planted, CBF_PLANTED_D, 0.0)))


def _write_series(bids, truth, pid, space, affine, cbf, att, mask, prot, rng, corrupt: bool) -> None:
    perf = bids / pid / "perf"
    perf.mkdir(parents=True, exist_ok=True)
    stem = perf / f"{pid}_space-{space}"
    lt = "PASL" if prot["kind"] in ("pasl", "multiti") else "PCASL"
    alpha = labeling_efficiency(lt, None, prot["bs"])
    shape = mask.shape
    plds = np.asarray(prot["plds"], dtype=float)
    meta = dict(ArterialSpinLabelingType=lt, MagneticFieldStrength=3, BackgroundSuppression=bool(prot["bs"]),
                M0Type=prot["m0"], RepetitionTimePreparation=4.0, MRAcquisitionType="3D",
                Manufacturer="rviflow synth", LabelingEfficiency=None)
    if prot["bs"]:
        meta["BackgroundSuppressionNumberPulses"] = prot["bs"]
    offsets = np.zeros(shape)
    if prot["kind"] == "multiti":  # 3-D readout, FAIR, Q2TIPS (first and last saturation pulse)
        meta.update(BolusCutOffFlag=True, BolusCutOffTechnique="Q2TIPS", BolusCutOffDelayTime=[prot["bolus"], 1.6],
                    PASLType="FAIR")
    elif lt == "PASL":
        meta.update(BolusCutOffFlag=True, BolusCutOffTechnique="QUIPSSII", BolusCutOffDelayTime=prot["bolus"],
                    MRAcquisitionType="2D", SliceTiming=[round(k * SLICE_STEP, 4) for k in range(shape[2])])
        offsets = np.broadcast_to(np.arange(shape[2]) * SLICE_STEP, shape)
    else:
        meta["LabelingDuration"] = prot["bolus"]
    dm = np.stack([kinetic_signal(cbf, att, (w + offsets)[..., None], lt, prot["bolus"], alpha, 1.65,
                                  m0=M0_VALUE)[..., 0] for w in plds], axis=-1)  # (X, Y, Z, P)
    control_level = 0.6 * M0_VALUE if prot["bs"] == 0 else 0.1 * M0_VALUE
    vols, context, pld_per_vol = [], [], []
    if prot["m0"] == "Included":  # the M0 volume first, acquired with TR 4 s (incomplete recovery)
        vols.append(M0_VALUE * (1 - np.exp(-4.0 / T1_TISSUE)) * mask + rng.normal(0, NOISE_SD, shape) * mask)
        context.append("m0scan")
        pld_per_vol.append(0.0)
    for j, w in enumerate(plds):
        control = control_level * mask + rng.normal(0, NOISE_SD, shape) * mask
        label = control - dm[..., j] + rng.normal(0, NOISE_SD, shape) * mask
        if corrupt and j == 1:
            label = label - 15.0 * mask  # a motion-corrupted pair
        vols += [control, label]
        context += ["control", "label"]
        pld_per_vol += [float(w), float(w)]
    meta["PostLabelingDelay"] = pld_per_vol if len(set(pld_per_vol)) > 1 else float(plds[0])
    img = nib.Nifti1Image(np.stack(vols, axis=3).astype(np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, f"{stem}_asl.nii.gz")
    write_json(f"{stem}_asl.json", {k: v for k, v in meta.items() if v is not None})
    pd.DataFrame(dict(volume_type=context)).to_csv(f"{stem}_aslcontext.tsv", sep="\t", index=False)
    if prot["m0"] == "Separate":
        m0_tr = prot.get("m0_tr", 4.0)
        m0 = M0_VALUE * (1 - np.exp(-m0_tr / T1_TISSUE)) * mask + rng.normal(0, NOISE_SD, shape) * mask
        nib.save(nib.Nifti1Image(m0.astype(np.float32), affine), f"{stem}_m0scan.nii.gz")
        write_json(f"{stem}_m0scan.json", dict(RepetitionTimePreparation=m0_tr, MagneticFieldStrength=3,
                                               IntendedFor=f"perf/{Path(str(stem)).name}_asl.nii.gz"))
    nib.save(nib.Nifti1Image(cbf.astype(np.float32), affine), truth / f"{pid}_desc-truth_cbf.nii.gz")
    if prot["kind"] in ("multipld", "multiti"):
        nib.save(nib.Nifti1Image(att.astype(np.float32), affine), truth / f"{pid}_desc-truth_att.nii.gz")
