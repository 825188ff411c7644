"""The rviflow command line: synth writes the planted truth, reho works like 3dReHo on one file."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pandas as pd

from rviflow.cli import main
from rviflow.measures.reho import reho_map


def test_synth_writes_cohort_and_truth(tmp_path):
    assert main(["synth", "--out", str(tmp_path), "--subjects", "6", "--seed", "1", "--timepoints", "60"]) == 0
    truth = pd.read_csv(tmp_path / "truth" / "effects.tsv", sep="\t")
    assert list(truth.columns) == ["measure", "region", "planted_d"]
    reho = truth[truth["measure"] == "reho"]
    assert len(reho) == 83 and (reho["planted_d"] < 0).sum() == 12 and (reho["planted_d"] == 0).sum() == 71
    parts = pd.read_csv(tmp_path / "bids" / "participants.tsv", sep="\t")
    assert list(parts.columns[:5]) == ["participant_id", "diagnosis", "age", "sex", "site"]
    assert sorted(parts["diagnosis"].value_counts()) == [3, 3] and parts["site"].nunique() == 3
    thick = truth[truth["measure"] == "thickness"]  # a third of ReHo's planted deficit, same regions
    assert len(thick) == 68 and (thick["planted_d"] == -0.4).sum() == 12
    assert set(thick.loc[thick["planted_d"] < 0, "region"]) == set(reho.loc[reho["planted_d"] < 0, "region"])
    assert parts.loc[parts["diagnosis"] == "MDD", "hamd"].min() >= 0 and parts["hamd"].notna().all()
    stats = tmp_path / "derivatives/fmriprep/sourcedata/freesurfer/sub-001/stats"
    assert (stats / "lh.aparc.stats").exists() and (stats / "rh.aparc.stats").exists()
    bold = tmp_path / "derivatives/fmriprep/sub-001/func/sub-001_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    img = nib.load(bold)
    assert img.shape[3] == 60 and np.allclose(np.diag(img.affine)[:3], 4)
    assert (tmp_path / "bids/sub-001/func/sub-001_task-rest_bold.json").exists()
    conf = pd.read_csv(bold.parent / "sub-001_task-rest_desc-confounds_timeseries.tsv", sep="\t")
    assert {"trans_x", "rot_z_derivative1_power2", "framewise_displacement", "white_matter", "csf"} <= set(conf)


def test_reho_command(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(6, 5, 4, 30)).astype(np.float32)
    data[:3] = data[0, 0, 0]  # identical series in the x < 3 half: W = 1 away from its border
    mask = np.ones(data.shape[:3], np.uint8)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "mask.nii.gz")
    rc = main(["reho", str(tmp_path / "bold.nii.gz"), "--mask", str(tmp_path / "mask.nii.gz"),
               "--out", str(tmp_path / "w.nii.gz"), "--neighbourhood", "19"])
    assert rc == 0
    w = np.asarray(nib.load(tmp_path / "w.nii.gz").dataobj)
    ref, _ = reho_map(data, mask > 0, 19)
    assert np.array_equal(w, ref)
    assert np.allclose(w[:2], 1.0, atol=1e-6) and w[4:].max() < 0.6

    nib.save(nib.Nifti1Image(data[..., 0], np.eye(4)), tmp_path / "3d.nii.gz")
    rc = main(["reho", str(tmp_path / "3d.nii.gz"), "--out", str(tmp_path / "x.nii.gz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "3d.nii.gz" in err[0] and "4-D" in err[0]


def test_demo_writes_cohort_and_reusable_config(tmp_path):
    """`rviflow demo` writes the cohort and DIR/config.yaml and hands extra args to snakemake
    (here a dry run, which validates the config and builds the whole DAG)."""
    import yaml

    rc = main(["demo", "--out", str(tmp_path), "--subjects", "6", "--", "--dry-run", "--quiet"])
    assert rc == 0
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert cfg["output_dir"] == str((tmp_path / "derivatives" / "rviflow").resolve())
    assert (tmp_path / "truth" / "effects.tsv").exists() and (tmp_path / "bids" / "participants.tsv").exists()


def test_run_passes_snakemake_arguments(tmp_path):
    from rviflow.synth.cohort import write_cohort
    import yaml

    cohort = write_cohort(tmp_path / "c", n_subjects=4, seed=0, n_timepoints=60)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(dict(bids_dir=str(cohort["bids"]), fmriprep_dir=str(cohort["fmriprep"]),
                                       output_dir=str(tmp_path / "out"), task="rest", space="MNI152NLin2009cAsym")))
    assert main(["run", "--configfile", str(cfg), "--dry-run", "--quiet", "--directory", str(tmp_path)]) == 0
    assert not (tmp_path / "out").exists()
    # a folder named "default" where it runs is not taken for a Snakemake workflow profile
    (tmp_path / "default").mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert main(["run", "--configfile", str(cfg), "--dry-run", "--quiet", "--directory", str(tmp_path)]) == 0
    finally:
        os.chdir(cwd)
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text().replace("task: rest", "task: rest_state"))
    assert main(["run", "--configfile", str(bad), "--dry-run", "--directory", str(tmp_path)]) != 0
