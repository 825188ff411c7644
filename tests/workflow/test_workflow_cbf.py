"""CBF in the real snakemake run on the synthetic cohort (conftest.pipeline_run): per-subject maps
and sidecars, QC into group/qc.tsv, group/parcels_cbf.tsv, and the planted hypoperfusion in
group/effect_sizes.tsv.

References: truth/effects.tsv rows with measure=cbf (the planted MDD effect) and the per-subject
truth maps truth/sub-*_desc-truth_cbf.nii.gz that rviflow.synth.asl generated the ASL from.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import recovered_vs_planted

pytestmark = pytest.mark.workflow
SPACE = "MNI152NLin2009cAsym"


def test_cbf_maps_sidecars_and_qc(pipeline_run):
    proc, out, cohort = pipeline_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    pids = pd.read_csv(cohort["participants"], sep="\t")["participant_id"]
    ratios, n_multi_ti = [], 0
    for pid in pids:
        stem = out / pid / "perf" / f"{pid}_space-{SPACE}"
        side = json.loads((stem.parent / f"{stem.name}_desc-mean_cbf.json").read_text())
        assert side["status"] == "ok" and side["Units"] == "ml/100g/min"
        c = side["Constants"]
        assert c["BloodBrainPartitionCoefficient"] == 0.9 and c["T1Blood"] == 1.65 and "LabelingEfficiencyUsed" in c
        for key in ("mean_gm_cbf", "fraction_negative", "spatial_cov", "volumes_dropped"):
            assert key in side["QC"]
        cbf = np.asarray(nib.load(stem.parent / f"{stem.name}_desc-mean_cbf.nii.gz").dataobj)
        truth = np.asarray(nib.load(cohort["truth"] / f"{pid}_desc-truth_cbf.nii.gz").dataobj)
        gm = truth > 30
        ratios.append(np.median(cbf[gm] / truth[gm]))
        multi = (cohort["truth"] / f"{pid}_desc-truth_att.nii.gz").exists()
        assert (stem.parent / f"{stem.name}_desc-kinetic_att.nii.gz").exists() == multi
        if multi and c["ArterialSpinLabelingType"] == "PASL":  # synth_asl's asl003-like FAIR Q2TIPS multi-TI
            n_multi_ti += 1
            assert side["QC"]["fit_voxels"] > 0 and "fit_att_unidentified" in side["QC"]
            assert 0 <= cbf.min() and cbf.max() <= 3 * truth.max()
        parcels_json = json.loads((stem.parent / f"{stem.name}_desc-cbf_parcels.json").read_text())
        assert parcels_json["QC"]["min_coverage"] == 0.5 and len(parcels_json["QC"]["covered_fraction"]) == 83
    assert n_multi_ti >= 1
    assert np.abs(np.array(ratios) - 1).max() < 0.05  # noisy synthetic ASL, white-paper model
    parcels = pd.read_csv(out / "group" / "parcels_cbf.tsv", sep="\t")
    assert len(parcels) == len(pids) and parcels.shape[1] == 2 + 83
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t", keep_default_na=False)
    rows = qc[qc["step"] == "cbf"]
    assert len(rows) == len(pids) and rows["reason"].str.contains("mean_gm_cbf=").all()
    assert rows["reason"].str.contains("volumes_dropped=1").sum() >= 2  # the corrupted pairs (synth_asl)


def test_planted_hypoperfusion_is_recovered(pipeline_run):
    """CBF effect sizes: negative where hypoperfusion was planted, and larger there than elsewhere."""
    proc, out, cohort = pipeline_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    m, eff = recovered_vs_planted(out, cohort, "cbf")
    assert len(m) == 83 and (m["n_case"] + m["n_control"] == 16).all()
    planted = m["planted_d"] != 0
    assert planted.sum() == 8
    assert (m.loc[planted, "d"] < 0).all()
    assert m.loc[planted, "d"].abs().mean() > 2 * m.loc[~planted, "d"].abs().mean()
    # the cohort engineer's ReHo rows sit beside the CBF rows in the same table
    assert set(eff["measure"]) >= {"reho", "cbf"}


def test_ready_maps_are_planned_like_asl(cohort16, tmp_path):
    """cbf.source aslprep: maps found by maps_glob, quantification replaced by resampling, absolute
    and relative measures both parcellated and collected (a dry run builds the whole DAG)."""
    import shutil

    from conftest import run_snakemake, write_config

    maps = tmp_path / "aslprep"
    for pid in ("sub-001", "sub-002", "sub-003", "sub-004"):
        (maps / pid / "perf").mkdir(parents=True)
        shutil.copy(cohort16["truth"] / f"{pid}_desc-truth_cbf.nii.gz",
                    maps / pid / "perf" / f"{pid}_space-{SPACE}_cbf.nii.gz")
    cfg = write_config(tmp_path / "c.yaml", cohort16, tmp_path / "out",
                       cbf=dict(source="aslprep", maps_dir=str(maps), analyse=["absolute", "relative"]))
    proc = run_snakemake(cfg, tmp_path, "--dry-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    for rule, n in (("cbf", 4), ("parcellate_cbf", 4), ("parcellate_rcbf", 4), ("collect_cbf", 1), ("collect_rcbf", 1)):
        assert any(line.split() == [rule, str(n)] for line in text.splitlines()), (rule, text[-2000:])
