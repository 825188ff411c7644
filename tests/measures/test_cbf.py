"""CBF quantification: white-paper formulas against hand-computed numbers, M0 handling, outlier
rejection, and forward-model round trips (single- and multi-PLD) with a known CBF / ATT.

References: the hand-computed numbers follow the equations printed in Alsop et al. 2015 (ASL white
paper), evaluated step by step in the comments; the round trips generate ASL with a plain
per-voxel loop written here from Buxton et al. 1998 (not with rviflow.measures.cbf.kinetic).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rviflow.io.asl import asl_params
from rviflow.measures.cbf.quantify import (CbfOptions, cbf_qc, cbf_single_pld, labeling_efficiency, m0_image, m0_tr_correction,
                         normalise, quantify, score_reject, slice_pld, t1_blood)
from rviflow.errors import InputError
from rviflow.measures.cbf.kinetic import fit_multi_pld, kinetic_signal


def _meta(**kw):
    meta = dict(ArterialSpinLabelingType="PCASL", PostLabelingDelay=1.8, LabelingDuration=1.8,
                BackgroundSuppression=False, M0Type="Separate", RepetitionTimePreparation=4.0,
                MagneticFieldStrength=3)
    meta.update(kw)
    return {k: v for k, v in meta.items() if v is not None}


# --- formulas, hand-computed -------------------------------------------------------------------

def test_pcasl_formula_hand_computed():
    # 6000*0.9*1*e^(1.8/1.65) / (2*0.85*1.65*100*(1-e^(-1.8/1.65)))
    # = 5400*2.976979 / (280.5*0.664089) = 16075.69 / 186.2770 = 86.2999
    assert cbf_single_pld(1.0, 100.0, 1.8, "PCASL", 0.85, 1.65, 1.8) == pytest.approx(86.2999, abs=1e-3)


def test_casl_formula_and_default_alpha():
    assert labeling_efficiency("CASL") == 0.68
    # 5400*e^(1.5/1.65) / (2*0.68*1.65*100*(1-e^(-1.5/1.65))) = 5400*2.482065 / (224.4*0.597110) = 100.030
    assert cbf_single_pld(1.0, 100.0, 1.5, "CASL", 0.68, 1.65, 1.5) == pytest.approx(100.030, abs=1e-3)
    # at 1.5 T, T1 blood 1.35 s: 5400*e^(1.5/1.35) / (2*0.68*1.35*100*(1-e^(-1.5/1.35))) = 133.190
    assert t1_blood(1.5) == 1.35 and t1_blood(3) == 1.65
    assert cbf_single_pld(1.0, 100.0, 1.5, "CASL", 0.68, t1_blood(1.5), 1.5) == pytest.approx(133.190, abs=1e-3)


def test_pasl_quipss2_and_q2tips_formula():
    # QUIPSS II, TI 1.8 s, TI1 0.8 s: 5400*e^(1.8/1.65) / (2*0.98*0.8*100) = 16075.69/156.8 = 102.5235
    p = asl_params(_meta(ArterialSpinLabelingType="PASL", LabelingDuration=None, BolusCutOffFlag=True,
                         BolusCutOffTechnique="QUIPSSII", BolusCutOffDelayTime=0.8), ["control", "label"])
    assert p.bolus_ti1 == 0.8 and labeling_efficiency("PASL") == 0.98
    assert cbf_single_pld(1.0, 100.0, 1.8, "PASL", 0.98, 1.65, p.bolus_ti1) == pytest.approx(102.5235, abs=1e-3)
    # Q2TIPS: BolusCutOffDelayTime = [first, last saturation pulse]; TI1 = the first (0.7 s)
    # 16075.69 / (2*0.98*0.7*100) = 16075.69/137.2 = 117.1697
    q = asl_params(_meta(ArterialSpinLabelingType="PASL", LabelingDuration=None, BolusCutOffFlag=True,
                         BolusCutOffTechnique="Q2TIPS", BolusCutOffDelayTime=[0.7, 1.6]), ["control", "label"])
    assert q.bolus_ti1 == 0.7
    assert cbf_single_pld(1.0, 100.0, 1.8, "PASL", 0.98, 1.65, q.bolus_ti1) == pytest.approx(117.1697, abs=1e-3)


def test_background_suppression_alpha():
    # 0.85 * 0.95^4 = 0.85 * 0.81450625 = 0.692330
    assert labeling_efficiency("PCASL", None, 4) == pytest.approx(0.6923303, abs=1e-7)
    # a given LabelingEfficiency is the effective alpha (ASLPrep, BASIL), unless told to apply the factor too
    assert labeling_efficiency("PCASL", 0.9, 2) == 0.9
    assert labeling_efficiency("PCASL", 0.9, 2, bs_with_given=True) == pytest.approx(0.9 * 0.9025)
    assert labeling_efficiency("PCASL", None, 2, pulse_efficiency=0.9) == pytest.approx(0.85 * 0.81)
    p = asl_params(_meta(BackgroundSuppression=True, BackgroundSuppressionNumberPulses=4), ["control", "label"])
    assert p.bs_pulses == 4
    # CBF rises by 1/0.95^4 = 1.227738: 86.2999 * 1.227738 = 105.9537
    assert cbf_single_pld(1.0, 100.0, 1.8, "PCASL", labeling_efficiency("PCASL", None, 4), 1.65, 1.8) == \
        pytest.approx(105.9537, abs=1e-3)


def test_m0_tr_correction_and_scale():
    # TR 4 s, T1 tissue 1.3 s: 1 / (1 - e^(-4/1.3)) = 1 / (1 - 0.046087) = 1.048316
    assert m0_tr_correction(100.0, 4.0, 1.3) == pytest.approx(104.8329, abs=1e-3)
    assert m0_tr_correction(100.0, 6.0, 1.3) == 100.0  # TR >= 5 s: fully recovered, no correction
    assert m0_tr_correction(100.0, None) == 100.0
    data = np.full((3, 3, 3, 2), 50.0)
    mask = np.ones((3, 3, 3), bool)
    p = asl_params(_meta(), ["control", "label"])
    m0, info = m0_image(data, p, mask, (1, 1, 1), np.full((3, 3, 3), 100.0), 4.0,
                        CbfOptions(m0_scale=10.0, m0_fwhm=0))
    assert np.allclose(m0, 1048.329, atol=1e-2) and info["M0TRCorrected"] and info["M0ScaleFactor"] == 10.0


def test_every_m0_type():
    mask = np.ones((4, 4, 3), bool)
    data = np.stack([np.full((4, 4, 3), v) for v in (200.0, 100.0, 99.0, 500.0)], axis=3)
    opts = CbfOptions(m0_fwhm=0)
    # Included: the m0scan volume (500), TR 6 s: no correction
    p = asl_params(_meta(M0Type="Included", RepetitionTimePreparation=6.0), ["m0scan", "control", "label", "m0scan"])
    m0, _ = m0_image(data, p, mask, (1, 1, 1), options=opts)
    assert np.allclose(m0, (200 + 500) / 2)
    # Separate: the separate scan's mean over volumes
    p = asl_params(_meta(M0Type="Separate"), ["control", "label", "control", "label"])
    m0, _ = m0_image(data, p, mask, (1, 1, 1), np.stack([np.full((4, 4, 3), 300.0)] * 2, 3), 8.0, opts)
    assert np.allclose(m0, 300)
    # Estimate: a constant, times the scale
    p = asl_params(_meta(M0Type="Estimate", M0Estimate=1234.0), ["control", "label", "control", "label"])
    m0, info = m0_image(data, p, mask, (1, 1, 1), options=CbfOptions(m0_fwhm=0, m0_scale=2))
    assert np.allclose(m0, 2468) and info["M0Estimate"] == 1234.0
    # Absent: mean control (controls 200 and 99), TR 6 s
    p = asl_params(_meta(M0Type="Absent", RepetitionTimePreparation=6.0), ["control", "label", "control", "label"])
    m0, _ = m0_image(data, p, mask, (1, 1, 1), options=opts)
    assert np.allclose(m0, (200 + 99) / 2)
    # Absent under background suppression is refused, naming the field
    p = asl_params(_meta(M0Type="Absent", BackgroundSuppression=True, BackgroundSuppressionNumberPulses=2),
                   ["control", "label", "control", "label"])
    with pytest.raises(InputError, match="BackgroundSuppression"):
        m0_image(data, p, mask, (1, 1, 1), options=opts)


def test_slice_timing_pld():
    # 2-D readout: slice k is read SliceTiming[k] s after the first, so its PLD is PLD + SliceTiming[k]
    p = asl_params(_meta(SliceTiming=[0.0, 0.05, 0.1], MRAcquisitionType="2D"), ["control", "label"])
    pld = slice_pld(1.8, p.slice_timing, (2, 2, 3), p.slice_axis)
    assert np.allclose(pld[0, 0], [1.8, 1.85, 1.9])
    # slice 2 (PLD 1.9): 5400*e^(1.9/1.65) / 186.2770 = 5400*3.162982/186.2770 = 17080.10/186.2770 = 91.6920
    assert cbf_single_pld(1.0, 100.0, pld[0, 0, 2], "PCASL", 0.85, 1.65, 1.8) == pytest.approx(91.6920, abs=1e-3)
    assert asl_params(_meta(SliceTiming=[0.0, 0.1], MRAcquisitionType="3D"), ["control", "label"]).slice_timing is None


def test_qc_numbers_and_normalisation():
    cbf = np.array([[[60.0, 40.0, -10.0, 50.0]]])
    brain = np.ones_like(cbf, bool)
    gm = np.array([[[True, True, False, False]]])
    qc = cbf_qc(cbf, brain, gm)
    assert qc["mean_gm_cbf"] == 50 and qc["fraction_negative"] == 0.25 and qc["spatial_cov"] == 0.2
    rel, ref = normalise(cbf, gm)
    assert ref == 50 and np.allclose(rel, cbf / 50)


def test_score_drops_an_outlier_volume():
    rng = np.random.default_rng(1)
    truth = rng.uniform(30, 70, 500)
    vols = truth + rng.normal(0, 5, (12, 500))
    vols[4] += 60  # a corrupted pair (e.g. motion)
    keep = score_reject(vols, [np.ones(500, bool)])
    assert not keep[4] and keep.sum() >= 6


# --- round trips ---------------------------------------------------------------------------------

def _buxton_loop(cbf, att, plds, lt, bolus, alpha, t1b, m0, lam=0.9):
    """Plain per-voxel Buxton (1998) single-compartment model, written independently of rviflow."""
    out = np.zeros(cbf.shape + (len(plds),))
    for idx in np.ndindex(cbf.shape):
        f = cbf[idx] / 6000.0
        for j, w in enumerate(plds):
            if lt == "PASL":
                if w < att[idx]:
                    s = 0.0
                elif w < att[idx] + bolus:
                    s = 2 * alpha * m0[idx] * f * (w - att[idx]) * math.exp(-w / t1b) / lam
                else:
                    s = 2 * alpha * m0[idx] * f * bolus * math.exp(-w / t1b) / lam
            else:
                if w + bolus < att[idx]:
                    s = 0.0
                elif w < att[idx]:
                    s = 2 * alpha * m0[idx] * f * t1b / lam * math.exp(-att[idx] / t1b) * (
                        1 - math.exp(-(bolus + w - att[idx]) / t1b))
                else:
                    s = 2 * alpha * m0[idx] * f * t1b / lam * math.exp(-w / t1b) * (1 - math.exp(-bolus / t1b))
            out[idx + (j,)] = s
    return out


def _phantom(shape=(10, 9, 6), seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    mask[1:-1, 1:-1, :] = True
    cbf = np.where(mask, rng.uniform(15, 95, shape), 0.0)
    return mask, cbf


def _series(dm, m0_value, context, extra_m0=True):
    """control = M0-like static signal, label = control - ΔM (one PLD per ΔM column)."""
    vols = []
    for j in range(dm.shape[-1]):
        control = np.full(dm.shape[:3], 0.6 * m0_value)
        vols += [control, control - dm[..., j]]
    if extra_m0:
        vols.append(np.full(dm.shape[:3], m0_value))
    return np.stack(vols, axis=3)


@pytest.mark.parametrize("lt,bolus,extra", [("PCASL", 1.8, {}), ("CASL", 1.5, {}),
                                             ("PASL", 0.8, dict(BolusCutOffFlag=True, BolusCutOffTechnique="QUIPSSII",
                                                                BolusCutOffDelayTime=0.8, LabelingDuration=None))])
def test_single_pld_round_trip_within_1_percent(lt, bolus, extra):
    mask, cbf = _phantom()
    att = np.full(cbf.shape, 1.0)  # below the PLD, as the white paper assumes
    alpha = labeling_efficiency(lt, None, 2)
    m0 = np.full(cbf.shape, 1000.0)
    dm = _buxton_loop(cbf, att, [1.8], lt, bolus, alpha, 1.65, m0)
    # 3 pairs + M0 included, M0 TR 4 s: the M0 volume is M0 * (1 - e^(-4/1.3))
    data = np.concatenate([_series(dm, 1000.0, None, False)] * 3, axis=3)
    data = np.concatenate([data, np.full(cbf.shape + (1,), 1000.0 * (1 - math.exp(-4 / 1.3)))], axis=3)
    ctx = ["control", "label"] * 3 + ["m0scan"]
    meta = dict(ArterialSpinLabelingType=lt, LabelingDuration=bolus, BackgroundSuppression=True, M0Type="Included",
                BackgroundSuppressionNumberPulses=2)
    p = asl_params(_meta(**{**meta, **extra}), ctx)
    res = quantify(data, p, mask, (4, 4, 4), options=CbfOptions(m0_fwhm=5.0))
    assert res.att is None and res.qc["volumes_dropped"] == 0
    assert np.abs(res.cbf[mask] / cbf[mask] - 1).max() < 0.01
    assert res.constants["LabelingEfficiencyUsed"] == pytest.approx(alpha)


@pytest.mark.parametrize("lt,plds,bolus", [("PCASL", [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5], 1.8),
                                           ("PASL", [0.5, 0.8, 1.1, 1.4, 1.7, 2.0, 2.4], 0.8)])
def test_multi_pld_round_trip_cbf_and_att(lt, plds, bolus):
    mask, cbf = _phantom(seed=2)
    rng = np.random.default_rng(3)
    att = np.where(mask, rng.uniform(0.5, 1.4, cbf.shape), 0.0)
    m0 = np.full(cbf.shape, 800.0)
    alpha = labeling_efficiency(lt)
    dm = _buxton_loop(cbf, att, plds, lt, bolus, alpha, 1.65, m0)
    data = np.concatenate([_series(dm, 800.0, None, False), np.full(cbf.shape + (1,), 800.0)], axis=3)
    ctx = ["control", "label"] * len(plds) + ["m0scan"]
    per_vol = [x for w in plds for x in (w, w)] + [0.0]
    extra = dict(BolusCutOffFlag=True, BolusCutOffTechnique="Q2TIPS", BolusCutOffDelayTime=[bolus, 1.5],
                 LabelingDuration=None) if lt == "PASL" else dict(LabelingDuration=bolus)
    p = asl_params(_meta(ArterialSpinLabelingType=lt, PostLabelingDelay=per_vol, RepetitionTimePreparation=6.0,
                         M0Type="Included",
                         **extra), ctx)
    assert p.multi_pld
    res = quantify(data, p, mask, (4, 4, 4), options=CbfOptions(m0_fwhm=0))
    assert np.abs(res.cbf[mask] / cbf[mask] - 1).max() < 0.01
    assert np.abs(res.att[mask] - att[mask]).max() < 0.01


def test_multi_pld_fit_is_vectorised_and_matches_the_loop_model():
    """kinetic_signal equals the plain loop; 20,000 voxels fit in one call (no per-voxel loop)."""
    rng = np.random.default_rng(4)
    cbf, att = rng.uniform(20, 90, (20000,)), rng.uniform(0.5, 1.6, (20000,))
    plds = np.array([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0])
    y = kinetic_signal(cbf, att, plds, "PCASL", 1.8, 0.85, 1.65)
    ref = _buxton_loop(cbf[:50], att[:50], plds, "PCASL", 1.8, 0.85, 1.65, np.ones(50))
    assert np.allclose(y[:50], ref, rtol=1e-12, atol=1e-15)
    f, a, info = fit_multi_pld(y, plds, "PCASL", 1.8, 0.85, 1.65)
    assert info["n_fallback"] == 0 and info["att_bounds"] == pytest.approx((0.25, 2.0))
    assert np.abs(f / cbf - 1).max() < 1e-3 and np.abs(a - att).max() < 1e-3


def test_cbf_command_on_one_file(tmp_path, capsys):
    """`rviflow cbf`: sidecars by BIDS naming, --m0 / --mask / --m0-fwhm; bad input = one line, rc 2."""
    import json

    import nibabel as nib
    import pandas as pd

    from rviflow.cli import main

    mask, cbf = _phantom(seed=5)
    att = np.full(cbf.shape, 1.0)
    alpha = labeling_efficiency("PCASL")
    m0 = np.full(cbf.shape, 1000.0)
    dm = _buxton_loop(cbf, att, [1.8], "PCASL", 1.8, alpha, 1.65, m0)
    data = np.concatenate([_series(dm, 1000.0, None, False)] * 2, axis=3)
    aff = np.diag([3.0, 3, 3, 1])
    nib.save(nib.Nifti1Image(data.astype(np.float32), aff), tmp_path / "sub-01_asl.nii.gz")
    pd.DataFrame(dict(volume_type=["control", "label"] * 2)).to_csv(tmp_path / "sub-01_aslcontext.tsv", sep="\t",
                                                                    index=False)
    (tmp_path / "sub-01_asl.json").write_text(json.dumps(_meta(RepetitionTimePreparation=6.0)))
    nib.save(nib.Nifti1Image(m0.astype(np.float32), aff), tmp_path / "m0.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), aff), tmp_path / "mask.nii.gz")
    rc = main(["cbf", str(tmp_path / "sub-01_asl.nii.gz"), "--out", str(tmp_path / "cbf.nii.gz"), "--m0",
               str(tmp_path / "m0.nii.gz"), "--mask", str(tmp_path / "mask.nii.gz"), "--m0-fwhm", "0"])
    assert rc == 0
    got = np.asarray(nib.load(tmp_path / "cbf.nii.gz").dataobj)
    assert np.abs(got[mask] / cbf[mask] - 1).max() < 0.01
    side = json.loads((tmp_path / "cbf.json").read_text())
    assert side["Constants"]["M0SmoothingFWHM"] == 0 and side["Constants"]["T1Blood"] == 1.65
    capsys.readouterr()
    (tmp_path / "sub-01_asl.json").write_text(json.dumps(_meta(PostLabelingDelay=None)))
    rc = main(["cbf", str(tmp_path / "sub-01_asl.nii.gz"), "--out", str(tmp_path / "x.nii.gz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "sub-01" in err[0] and "sub-01_asl.json" in err[0]
    assert "PostLabelingDelay" in err[0]


@pytest.mark.parametrize("kind", ["whole_brain", "grey_matter", "cerebellum"])
def test_ready_maps_resampled_and_normalised(tmp_path, kind):
    """SPECT-like relative map on another grid: resampled to the reference grid, ÷ the mean in the
    reference mask (so that mean is 1). Reference: the mean computed here with plain numpy."""
    import nibabel as nib

    from rviflow.measures.cbf.perfusion import cbf_from_map, finish

    ref_aff = np.diag([4.0, 4, 4, 1])
    brain = np.zeros((10, 10, 8), bool)
    brain[2:8, 2:8, 1:7] = True
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), ref_aff), tmp_path / "mask.nii.gz")
    atlas = np.zeros((10, 10, 8), np.int16)
    atlas[3:7, 3:7, 2:6] = 1
    nib.save(nib.Nifti1Image(atlas, ref_aff), tmp_path / "atlas.nii.gz")
    cereb = np.zeros((10, 10, 8), np.uint8)
    cereb[2:8, 2:4, 1:3] = 1
    nib.save(nib.Nifti1Image(cereb, ref_aff), tmp_path / "cereb.nii.gz")
    counts = np.fromfunction(lambda i, j, k: 1000 + 10 * i + 5 * k, (20, 20, 16))
    nib.save(nib.Nifti1Image(counts.astype(np.float32), np.diag([2.0, 2, 2, 1])), tmp_path / "spect.nii.gz")
    res = cbf_from_map(str(tmp_path / "spect.nii.gz"), str(tmp_path / "mask.nii.gz"), "spect",
                       str(tmp_path / "atlas.nii.gz"))
    assert res["cbf"].shape == brain.shape and res["constants"]["Units"].startswith("relative")
    res = finish(res, kind, str(tmp_path / "cereb.nii.gz"), nib.load(tmp_path / "mask.nii.gz"))
    ref = {"whole_brain": brain, "grey_matter": brain & (atlas > 0), "cerebellum": brain & (cereb > 0)}[kind]
    assert res["rel"][ref].mean() == pytest.approx(1.0)
    assert res["constants"]["NormalisationReferenceMean"] == pytest.approx(res["cbf"][ref].mean(), rel=1e-4)
    assert res["qc"]["mean_gm_cbf"] == pytest.approx(res["cbf"][brain & (atlas > 0)].mean(), abs=1e-3)


def test_swapped_label_control_names_the_aslcontext_and_one_voxel_cannot_trip_it():
    """Label and control swapped: one line naming subject, aslcontext file and the likely cause
    (the workflow-level row: tests/workflow/test_workflow.py, ASL_ROWS). The check is a median over grey
    matter and a majority over the delays: one wild voxel, or noise-only early delays, do not trip it."""
    from rviflow.measures.cbf.quantify import LabelOrderError, check_label_order

    rng = np.random.default_rng(0)
    plds = np.repeat([0.3, 0.6, 0.9, 1.2, 1.5, 1.8], 2)
    wp = np.where(plds[:, None] > 0.7, 60.0, 0.0) + rng.normal(0, 30, (12, 500))  # two noise-only early delays
    wp[:, 7] = -1e9  # one wild voxel
    tissue = np.ones(500, bool)
    qc = check_label_order(wp, plds, tissue, ["control", "label"])
    assert 30 < qc["median_tissue_cbf_check"] < 50  # 4 of 6 delays at 60
    with pytest.raises(LabelOrderError, match="label and control look swapped"):
        check_label_order(-wp, plds, tissue, ["control", "label"])
    with pytest.raises(LabelOrderError, match="deltam / cbf volumes must be control - label"):
        check_label_order(-wp, plds, tissue, ["deltam"])
    mask, cbf = _phantom(seed=9)
    dm = _buxton_loop(cbf, np.full(cbf.shape, 1.0), [1.8], "PCASL", 1.8, 0.85, 1.65, np.full(cbf.shape, 1000.0))
    data = np.concatenate([_series(dm, 1000.0, None, False)] * 2, axis=3)[..., [1, 0, 3, 2]]  # label first
    data = np.concatenate([data, np.full(cbf.shape + (1,), 1000.0)], axis=3)
    p = asl_params(_meta(M0Type="Included", RepetitionTimePreparation=6.0), ["control", "label"] * 2 + ["m0scan"])
    with pytest.raises(InputError) as info:
        quantify(data, p, mask, (4, 4, 4), options=CbfOptions(m0_fwhm=0))
    assert "(negative)" in str(info.value) and "label and control look swapped" in str(info.value)


# --- the bounded multi-PLD / multi-TI fit at low SNR --------------------------------------------

def _noisy_design(cbf0, att0, n, sd_rel, seed, lt="PASL"):
    """asl003's design (FAIR Q2TIPS, TIs 0.3-3.0 s, TI1 0.7 s, 1 pair each), ΔM/M0 from the plain
    loop model above, noise SD = sd_rel × the mean grey-matter signal (CBF 60, ATT 1.0)."""
    plds = np.round(np.arange(0.3, 3.01, 0.3), 3)
    alpha = 0.98 * 0.95 ** 2
    one = _buxton_loop(np.array([cbf0]), np.array([att0]), plds, lt, 0.7, alpha, 1.65, np.ones(1))[0]
    gm = _buxton_loop(np.array([60.0]), np.array([1.0]), plds, lt, 0.7, alpha, 1.65, np.ones(1))[0]
    rng = np.random.default_rng(seed)
    clean = np.tile(one, (n, 1))
    return clean + rng.normal(0, sd_rel * gm.mean(), clean.shape), clean, plds, alpha


def test_fit_bounds_and_identifiable_att_range():
    """ATT is searched only where the last sample is on the plateau (PCASL: ATT <= last PLD;
    PASL: ATT <= last TI − TI1), so the model never vanishes; pure noise gives CBF in [0, cbf_max],
    finite, never a wild number, and a negative signal gives 0."""
    from rviflow.measures.cbf.kinetic import FIT_FALLBACK, att_bounds

    assert att_bounds(np.arange(0.3, 3.01, 0.3), "PASL", 0.7) == pytest.approx((0.1, 2.3))
    assert att_bounds([0.25, 0.5, 1.5], "PCASL", 1.4, (0.1, 3.0)) == pytest.approx((0.25, 1.5))
    assert att_bounds([0.25, 0.5, 1.5], "PCASL", 1.4, (0.5, 1.0)) == pytest.approx((0.5, 1.0))
    y, _, plds, alpha = _noisy_design(0.0, 1.0, 5000, 1.0, seed=1)
    f, att, info = fit_multi_pld(y, plds, "PASL", 0.7, alpha, 1.65, cbf_max=250.0)
    assert np.isfinite(f).all() and f.min() >= 0 and f.max() <= 250 and att.max() <= 2.3 + 1e-9
    assert info["n_clipped_negative"] > 0 and (info["status"] == FIT_FALLBACK).sum() == info["n_fallback"]
    f, _, _ = fit_multi_pld(-np.abs(y), plds, "PASL", 0.7, alpha, 1.65, cbf_max=250.0)
    assert np.all(f == 0)


def test_smoothed_att_reduces_the_low_snr_bias():
    """White matter (CBF 20, ATT 1.3 s) at grey-matter SNR 1 per pair: the joint voxelwise fit picks
    the ATT that fits the noise and overestimates CBF; estimating ATT from a less noisy signal
    (as the in-plane smoothing gives; here the same voxel with 1/4 of the noise) and fitting CBF
    linearly at that ATT removes most of it. Grey matter is unbiased either way within 8 %."""
    y, clean, plds, alpha = _noisy_design(20.0, 1.3, 20000, 1.0, seed=2)
    smooth = clean + np.random.default_rng(3).normal(0, 0.25, clean.shape) * (y - clean).std()
    f_joint, _, _ = fit_multi_pld(y, plds, "PASL", 0.7, alpha, 1.65, cbf_max=250.0)
    f_s, _, info = fit_multi_pld(y, plds, "PASL", 0.7, alpha, 1.65, att_data=smooth, cbf_max=250.0)
    bias_joint, bias_s = f_joint.mean() / 20 - 1, f_s.mean() / 20 - 1
    assert bias_joint > 0.3 and abs(bias_s) < 0.12, (bias_joint, bias_s)
    assert f_s.max() < 3 * 60
    y, clean, plds, alpha = _noisy_design(60.0, 1.0, 20000, 1.0, seed=4)
    smooth = clean + np.random.default_rng(5).normal(0, 0.25, clean.shape) * (y - clean).std()
    f_s, _, _ = fit_multi_pld(y, plds, "PASL", 0.7, alpha, 1.65, att_data=smooth, cbf_max=250.0)
    assert abs(np.median(f_s) / 60 - 1) < 0.08 and f_s.max() < 3 * 60


def test_issue_16_asl003_noise_never_refused_nor_wild():
    """The issue's case: asl003's design, noise SD 1 with M0 1000 (GM ΔM 0-5.5), 30 draws of a
    small GM/WM phantom through quantify: no refusal, every CBF within [0, 180]."""
    shape = (8, 8, 4)
    gm = np.zeros(shape, bool)
    gm[:, :4] = True
    mask = np.ones(shape, bool)
    cbf = np.where(gm, 60.0, 20.0)
    att = np.where(gm, 1.0, 1.3)
    plds = np.round(np.arange(0.3, 3.01, 0.3), 3)
    alpha = 0.98 * 0.95 ** 2
    dm = _buxton_loop(cbf, att, plds, "PASL", 0.7, alpha, 1.65, np.full(shape, 1000.0))
    p = asl_params(_meta(ArterialSpinLabelingType="PASL", LabelingDuration=None, BolusCutOffFlag=True,
                         BolusCutOffTechnique="Q2TIPS", BolusCutOffDelayTime=[0.7, 1.6], M0Type="Separate",
                         BackgroundSuppression=True, BackgroundSuppressionNumberPulses=2, PASLType="FAIR",
                         PostLabelingDelay=[w for w in plds for _ in (0, 1)]), ["label", "control"] * 10)
    worst = 0.0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        clean = _series(dm, 1000.0, None, False)[..., np.ravel([[2 * j + 1, 2 * j] for j in range(10)])]
        data = clean + rng.normal(0, 1.0, clean.shape)
        res = quantify(data, p, mask, (4, 4, 4), np.full(shape, 1000.0), 6.0, CbfOptions(), gm)
        assert np.isfinite(res.cbf).all() and res.cbf.min() >= 0
        worst = max(worst, float(res.cbf.max()))
    assert worst <= 180, worst


def test_partial_coverage_is_not_zero_cbf(tmp_path):
    """Template-space PCASL, true CBF 60, 3 of 8 slices outside the ASL field of view (zero
    filled): the mask written is the coverage, regional means and mean_gm_cbf are 60 (not 37.5),
    the normalisation reference mean is 60, a region covered below min_coverage is n/a and the
    covered fraction per region is reported. Reference: the planted CBF and the slab geometry."""
    import json

    import nibabel as nib
    import pandas as pd

    from rviflow.preprocess.parcellate import parcellate_covered
    from rviflow.measures.cbf.perfusion import cbf_from_asl, finish

    shape, aff = (10, 10, 8), np.diag([4.0, 4, 4, 1])
    brain = np.zeros(shape, bool)
    brain[1:9, 1:9, :] = True
    atlas = np.zeros(shape, np.int16)
    atlas[1:9, 1:5, 0:4] = 1  # fully covered
    atlas[1:9, 5:9, 3:7] = 2  # slices 3, 4 covered, 5, 6 not: 50 % covered
    atlas[1:9, 1:5, 6:8] = 3  # not covered
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), aff), tmp_path / "brain.nii.gz")
    nib.save(nib.Nifti1Image(atlas, aff), tmp_path / "atlas.nii.gz")
    pd.DataFrame(dict(index=[1, 2, 3], name=["a", "b", "c"])).to_csv(tmp_path / "labels.tsv", sep="\t", index=False)
    cbf = np.where(brain, 60.0, 0.0)
    dm = _buxton_loop(cbf, np.full(shape, 1.0), [1.8], "PCASL", 1.8, 0.85, 1.65, np.full(shape, 1000.0))
    data = np.concatenate([_series(dm, 1000.0, None, False)] * 2 + [np.full(shape + (1,), 1000.0)], axis=3)
    data[:, :, 5:] = 0.0  # outside the slab
    perf = tmp_path / "sub-01" / "perf"
    perf.mkdir(parents=True)
    nib.save(nib.Nifti1Image(data.astype(np.float32), aff), perf / "sub-01_space-MNI_asl.nii.gz")
    (perf / "sub-01_space-MNI_asl.json").write_text(json.dumps(_meta(M0Type="Included", RepetitionTimePreparation=6.0)))
    pd.DataFrame(dict(volume_type=["control", "label"] * 2 + ["m0scan"])).to_csv(
        perf / "sub-01_space-MNI_aslcontext.tsv", sep="\t", index=False)
    res = cbf_from_asl(str(perf / "sub-01_space-MNI_asl.nii.gz"), str(tmp_path / "brain.nii.gz"), "sub-01",
                       CbfOptions(m0_fwhm=5.0), str(tmp_path / "atlas.nii.gz"))
    res = finish(res, "grey_matter", None, nib.load(tmp_path / "brain.nii.gz"))
    assert res["valid"].sum() == brain[:, :, :5].sum()
    assert res["qc"]["mean_gm_cbf"] == pytest.approx(60, rel=0.01)
    assert res["qc"]["coverage_fraction"] == pytest.approx(5 / 8)
    assert res["constants"]["NormalisationReferenceMean"] == pytest.approx(60, rel=0.01)
    assert np.allclose(res["rel"][res["valid"]], 1, atol=0.01)
    nib.save(nib.Nifti1Image(res["cbf"].astype(np.float32), aff), tmp_path / "cbf.nii.gz")
    nib.save(nib.Nifti1Image(res["valid"].astype(np.uint8), aff), tmp_path / "valid.nii.gz")
    means, counts, covered = parcellate_covered(tmp_path / "cbf.nii.gz", tmp_path / "atlas.nii.gz",
                                                tmp_path / "labels.tsv", tmp_path / "valid.nii.gz",
                                                tmp_path / "brain.nii.gz", min_coverage=0.5)
    assert covered.to_dict() == pytest.approx(dict(a=1.0, b=0.5, c=0.0))
    assert means["a"] == pytest.approx(60, rel=0.01) and means["b"] == pytest.approx(60, rel=0.01)
    assert np.isnan(means["c"])
    means, _, _ = parcellate_covered(tmp_path / "cbf.nii.gz", tmp_path / "atlas.nii.gz", tmp_path / "labels.tsv",
                                     tmp_path / "valid.nii.gz", tmp_path / "brain.nii.gz", min_coverage=0.6)
    assert np.isnan(means["b"]) and not np.isnan(means["a"])


def _cli_series(tmp_path, **meta):
    import json

    import nibabel as nib
    import pandas as pd

    mask, cbf = _phantom(seed=5)
    dm = _buxton_loop(cbf, np.full(cbf.shape, 1.0), [1.8], "PCASL", 1.8, 0.85, 1.65, np.full(cbf.shape, 1000.0))
    aff = np.diag([3.0, 3, 3, 1])
    nib.save(nib.Nifti1Image(np.concatenate([_series(dm, 1000.0, None, False)] * 2, axis=3).astype(np.float32), aff),
             tmp_path / "sub-01_asl.nii.gz")
    pd.DataFrame(dict(volume_type=["control", "label"] * 2)).to_csv(tmp_path / "sub-01_aslcontext.tsv", sep="\t",
                                                                    index=False)
    (tmp_path / "sub-01_asl.json").write_text(json.dumps(_meta(**meta)))
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), aff), tmp_path / "mask.nii.gz")
    return mask, cbf, aff


def test_cbf_command_m0_tr_messages_and_options(tmp_path, capsys):
    """`rviflow cbf`: an --m0 without a sidecar says on one line that the short-TR correction is
    skipped (and records it) unless --m0-tr is given; errors raised during quantification name
    the file; a 7 T series needs --t1-blood (the message says so); --labeling-efficiency is used;
    the JSON's mean is named mean_brain_cbf without a grey-matter mask."""
    import json

    import nibabel as nib

    from rviflow.cli import main

    mask, cbf, aff = _cli_series(tmp_path)
    m0_acquired = 1000.0 * (1 - math.exp(-4.0 / 1.3))  # M0 acquired with TR 4 s
    nib.save(nib.Nifti1Image(np.full(cbf.shape, m0_acquired, np.float32), aff), tmp_path / "m0.nii.gz")
    args = ["cbf", str(tmp_path / "sub-01_asl.nii.gz"), "--m0", str(tmp_path / "m0.nii.gz"), "--mask",
            str(tmp_path / "mask.nii.gz"), "--m0-fwhm", "0"]
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "a.nii.gz")]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if "skipped" in ln]
    assert len(err) == 1 and "m0.nii.gz" in err[0] and "--m0-tr" in err[0]
    side = json.loads((tmp_path / "a.json").read_text())
    assert side["Constants"]["M0TRCorrection"].startswith("skipped") and side["Constants"]["M0TRCorrected"] is False
    assert "mean_brain_cbf" in side["QC"] and "mean_gm_cbf" not in side["QC"]
    skipped = np.asarray(nib.load(tmp_path / "a.nii.gz").dataobj)[mask]
    assert np.allclose(skipped / cbf[mask], 1 / (1 - math.exp(-4.0 / 1.3)), rtol=1e-4)  # CBF too high by 4.8 %
    assert main(args + ["--out", str(tmp_path / "b.nii.gz"), "--m0-tr", "4"]) == 0
    assert "skipped" not in capsys.readouterr().err
    assert np.abs(np.asarray(nib.load(tmp_path / "b.nii.gz").dataobj)[mask] / cbf[mask] - 1).max() < 1e-4
    (tmp_path / "m0.json").write_text(json.dumps(dict(RepetitionTimePreparation=4.0)))  # a sidecar beside it
    assert main(args + ["--out", str(tmp_path / "c.nii.gz")]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["Constants"]["M0TRCorrected"] is True
    assert main(args + ["--out", str(tmp_path / "d.nii.gz"), "--labeling-efficiency", "0.7"]) == 0
    assert json.loads((tmp_path / "d.json").read_text())["Constants"]["LabelingEfficiencyUsed"] == 0.7
    capsys.readouterr()
    # errors raised during quantification name the file (one line, rc 2)
    m0 = ["--m0", str(tmp_path / "m0.nii.gz")]
    for meta, text, extra in ((dict(SliceTiming=[0.0, 0.05], MRAcquisitionType="2D"), "SliceTiming has 2 values", m0),
                              (dict(MagneticFieldStrength=7), "--t1-blood", m0),
                              (dict(M0Type="Absent", BackgroundSuppression=True, BackgroundSuppressionNumberPulses=2),
                               "BackgroundSuppression", [])):
        _cli_series(tmp_path, **meta)
        rc = main(["cbf", str(tmp_path / "sub-01_asl.nii.gz"), "--out", str(tmp_path / "x.nii.gz"), "--mask",
                   str(tmp_path / "mask.nii.gz"), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "sub-01_asl.nii.gz" in err[0] and text in err[0], err
    _cli_series(tmp_path, MagneticFieldStrength=7)
    assert main(args + ["--out", str(tmp_path / "e.nii.gz"), "--t1-blood", "2.1", "--m0-tr", "4"]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["Constants"]["T1Blood"] == 2.1


def test_m0_absent_fair_refused_and_m0_on_another_grid_resampled(tmp_path):
    """M0Type Absent with FAIR PASL: the control is an inverted image, not proton density: refused
    naming the field. A separate M0 on another grid (asl003: 2x2x5 mm vs 8x4x6 mm) is resampled
    to the ASL grid and that is recorded (the full asl003 case: tests/measures/test_asl_examples.py)."""
    import nibabel as nib

    from rviflow.measures.cbf.perfusion import load_m0

    mask = np.ones((4, 4, 3), bool)
    data = np.stack([np.full((4, 4, 3), v) for v in (200.0, 100.0)], axis=3)
    pasl = dict(ArterialSpinLabelingType="PASL", LabelingDuration=None, BolusCutOffFlag=True,
                BolusCutOffTechnique="QUIPSSII", BolusCutOffDelayTime=0.7, M0Type="Absent")
    for kind, text in (("FAIR", "slab-selective inversion"), (None, "PASLType is missing")):
        p = asl_params(_meta(**pasl, PASLType=kind), ["control", "label"])
        with pytest.raises(InputError, match=text):
            m0_image(data, p, mask, (1, 1, 1), options=CbfOptions(m0_fwhm=0))
    p = asl_params(_meta(**pasl, PASLType="PICORE"), ["control", "label"])
    m0, _ = m0_image(data, p, mask, (1, 1, 1), options=CbfOptions(m0_fwhm=0, m0_tr_limit=0))
    assert np.allclose(m0, 200)
    asl = nib.Nifti1Image(np.zeros((6, 5, 4, 2), np.float32), np.diag([8.0, 4, 6, 1]))
    fine_aff = np.diag([2.0, 2, 5, 1])
    fine_aff[:3, 3] = [-3, -1, -0.5]  # the same field of view (voxel corners aligned)
    nib.save(nib.Nifti1Image(np.full((24, 10, 5), 700.0, np.float32), fine_aff), tmp_path / "m0.nii.gz")
    m0, info = load_m0(tmp_path / "m0.nii.gz", asl)
    assert m0.shape == (6, 5, 4) and np.allclose(m0[1:-1, 1:-1, 1:-1], 700) and "2.0x2.0x5.0 mm" in info["M0Resampled"]
