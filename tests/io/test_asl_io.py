"""BIDS-ASL reading and validation: every bad input gives one line naming subject, file and field.

Reference: the BIDS 1.9 ASL specification (required fields, aslcontext volume types); the files
are written by hand here, independently of rviflow.synth.asl.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rviflow.io.asl import discover_asl, load_asl, plan_cbf_inputs
from rviflow.errors import InputError

CONTEXT = ["m0scan", "control", "label", "control", "label"]


def _series(root, pid="sub-07", meta=None, context=CONTEXT, n_vols=5):
    perf = root / pid / "perf"
    perf.mkdir(parents=True, exist_ok=True)
    stem = perf / f"{pid}_asl"
    data = np.full((6, 6, 4, n_vols), 500.0, np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([4.0, 4, 4, 1])), f"{stem}.nii.gz")
    side = dict(ArterialSpinLabelingType="PCASL", PostLabelingDelay=1.8, LabelingDuration=1.8,
                BackgroundSuppression=False, M0Type="Included", RepetitionTimePreparation=4.0,
                MagneticFieldStrength=3)
    side.update(meta or {})
    (perf / f"{pid}_asl.json").write_text(json.dumps({k: v for k, v in side.items() if v is not None}))
    pd.DataFrame(dict(volume_type=context)).to_csv(perf / f"{pid}_aslcontext.tsv", sep="\t", index=False)
    return perf / f"{pid}_asl.nii.gz"


def _one_line_error(path, *needles):
    with pytest.raises(InputError) as info:
        load_asl(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("sub-07: ")
    for n in needles:
        assert n in msg, (n, msg)
    return msg


def test_valid_series_reads(tmp_path):
    img, params, m0 = load_asl(_series(tmp_path))
    assert img.shape[3] == 5 and params.context == CONTEXT and m0 is None
    assert params.labeling_type == "PCASL" and np.allclose(params.plds, 1.8) and not params.multi_pld


def test_aslcontext_length_differs_from_volumes(tmp_path):
    path = _series(tmp_path, context=CONTEXT + ["control"])
    _one_line_error(path, "sub-07_aslcontext.tsv", "volume_type", "6 rows", "5 volumes")


def test_no_control_label_pairs(tmp_path):
    path = _series(tmp_path, context=["m0scan", "control", "control", "control", "noRF"])
    _one_line_error(path, "sub-07_aslcontext.tsv", "volume_type", "no control/label pairs")


@pytest.mark.parametrize("field", ["ArterialSpinLabelingType", "PostLabelingDelay", "M0Type",
                                   "BackgroundSuppression", "RepetitionTimePreparation", "MagneticFieldStrength",
                                   "LabelingDuration"])
def test_missing_required_field(tmp_path, field):
    path = _series(tmp_path, meta={field: None})
    _one_line_error(path, "sub-07_asl.json", field, "missing")


def test_pasl_without_bolus_cutoff(tmp_path):
    path = _series(tmp_path, meta=dict(ArterialSpinLabelingType="PASL", LabelingDuration=None, BolusCutOffFlag=False))
    _one_line_error(path, "sub-07_asl.json", "BolusCutOffFlag", "PASL without bolus cut-off")
    path = _series(tmp_path, meta=dict(ArterialSpinLabelingType="PASL", LabelingDuration=None, BolusCutOffFlag=True,
                                       BolusCutOffTechnique="QUIPSSII"))
    _one_line_error(path, "sub-07_asl.json", "BolusCutOffDelayTime")


def test_other_field_errors(tmp_path):
    _one_line_error(_series(tmp_path, meta=dict(PostLabelingDelay=[1.8, 1.8])), "PostLabelingDelay", "2 values")
    _one_line_error(_series(tmp_path, meta=dict(M0Type="Separate")), "M0Type is Separate", "sub-07_m0scan.nii.gz")
    _one_line_error(_series(tmp_path, meta=dict(M0Type="Estimate")), "M0Estimate")
    _one_line_error(_series(tmp_path, meta=dict(BackgroundSuppression=True)), "BackgroundSuppressionNumberPulses")
    _one_line_error(_series(tmp_path, context=["m0scan", "control", "label", "control", "flair"]), "volume_type",
                    "'flair'")


def test_cbf_step_records_one_line_and_a_failed_sidecar(tmp_path, capsys):
    """The per-subject step (nipype node) turns bad input into one stderr line + status failed."""
    from rviflow.preprocess.parcellate import default_atlas
    from rviflow.pipeline.steps import cbf_step

    path = _series(tmp_path, context=CONTEXT + ["label"])
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((6, 6, 4), np.uint8), np.diag([4.0, 4, 4, 1])), mask)
    out = {k: str(tmp_path / "out" / f"x_{k}.nii.gz") for k in ("cbf", "rel", "mask")}
    out["json"] = str(tmp_path / "out" / "x_cbf.json")
    from rviflow.io.config import schema_defaults
    from rviflow.measures.cbf.quantify import cbf_options

    cfg = schema_defaults("cbf")
    ok = cbf_step(str(path), out, str(mask), default_atlas()[0], str(tmp_path / "work"), "sub-07", source="asl",
                  options=cbf_options(cfg), in_template=True, reference=cfg["reference"], on_error="exclude")
    assert not ok
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "sub-07" in ln]
    assert len(lines) == 1 and "sub-07_aslcontext.tsv" in lines[0] and "volume_type" in lines[0]
    rec = json.loads(open(out["json"]).read())
    assert rec["status"] == "failed" and rec["step"] == "cbf" and "volume_type" in rec["reason"]


def test_discovery_and_planning(tmp_path):
    from rviflow.io.bids import Scan

    _series(tmp_path / "bids", "sub-01")
    _series(tmp_path / "bids", "sub-02")
    found = discover_asl(tmp_path / "bids")
    assert [s.key for s in found] == ["sub-01/perf/sub-01", "sub-02/perf/sub-02"]
    scan = Scan("sub-01", None, (("sub", "01"),), "bold.nii.gz", "conf.tsv", "mask.nii.gz",
                "sub-01/func/sub-01_task-rest")
    anat = tmp_path / "fmriprep" / "sub-01" / "anat"
    anat.mkdir(parents=True)
    plans, problems = plan_cbf_inputs([scan], "MNI", tmp_path / "fmriprep", "asl", tmp_path / "bids")
    # sub-01 is native space without fMRIPrep anat files; sub-02 has no BOLD: both reported
    assert plans == {} and len(problems) == 2 and "desc-preproc_T1w" in problems[0]["reason"]
    for name in ("sub-01_desc-preproc_T1w.nii.gz", "sub-01_from-T1w_to-MNI_mode-image_xfm.h5"):
        (anat / name).write_bytes(b"")
    plans, _ = plan_cbf_inputs([scan], "MNI", tmp_path / "fmriprep", "asl", tmp_path / "bids")
    assert not plans["sub-01/perf/sub-01"].in_template and plans["sub-01/perf/sub-01"].xfm.endswith("_xfm.h5")
    plans, _ = plan_cbf_inputs([scan], "MNI", tmp_path / "fmriprep", "asl", tmp_path / "bids", asl_space="MNI")
    assert plans["sub-01/perf/sub-01"].in_template and plans["sub-01/perf/sub-01"].reference == "mask.nii.gz"
