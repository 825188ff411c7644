"""Bad-input catalogue: each broken input gives one clear line naming subject, file and problem,
the subject is marked failed in group/qc.tsv, and every other subject and the cohort tables are
still produced (on_subject_error: exclude, the default)."""

from __future__ import annotations

import gzip
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import MACHINERY_CONFIG, run_snakemake, write_config
from rviflow.io.bids import read_participants
from rviflow.cohort.effects import design_matrix
from rviflow.errors import InputError

SPACE = "MNI152NLin2009cAsym"
GOOD = ["sub-001", "sub-002", "sub-003", "sub-004"]


def _bold(fmriprep, sub):
    return fmriprep / sub / "func" / f"{sub}_task-rest_space-{SPACE}_desc-preproc_bold.nii.gz"


def _conf(fmriprep, sub):
    return fmriprep / sub / "func" / f"{sub}_task-rest_desc-confounds_timeseries.tsv"


def _rewrite(path, fn):
    img = nib.load(path)
    data, affine = fn(np.asarray(img.dataobj).astype(np.float32), img.affine.copy())
    hdr = img.header.copy() if data.ndim == img.ndim else None
    if hdr is not None:
        hdr.set_data_dtype(np.float32)  # keep NaN (the synthetic BOLD is int16)
    nib.save(nib.Nifti1Image(data, affine, hdr), path)


#: subject -> (how it is broken, step it fails at, text in the message and QC reason)
CATALOGUE = {
    "sub-005": ("truncated .nii.gz", "denoise", "truncated or corrupt"),
    "sub-006": ("not a NIfTI", "denoise", "cannot read BOLD image"),
    "sub-007": ("3-D image", "denoise", "3 dimensions, a 4-D time series is needed"),
    "sub-008": ("too few time points", "denoise", "only 30 volumes left after censoring (minimum 50)"),
    "sub-009": ("NaN voxels", "denoise", "NaN or Inf values inside the brain mask"),
    "sub-010": ("all-zero image", "denoise", "all zeros inside the brain mask"),
    "sub-011": ("mask grid differs", "denoise", "does not match the BOLD grid"),
    "sub-012": ("confounds wrong length", "denoise", "confounds have 90 rows but the BOLD has 100 volumes"),
    "sub-013": ("confounds column missing", "denoise", "confounds unusable"),
    "sub-014": ("not in atlas space", "parcellate", "does not overlap the atlas"),
    "sub-015": ("another space- entity", "discover", "preprocessed BOLD is in space-T1w, not space-MNI152NLin2009cAsym"),
}


@pytest.fixture(scope="module")
def catalogue_run(tmp_path_factory):
    from rviflow.synth.cohort import write_cohort

    root = tmp_path_factory.mktemp("catalogue")
    cohort = write_cohort(root / "cohort", n_subjects=15, seed=11, n_sites=2)
    fp = cohort["fmriprep"]
    raw = _bold(fp, "sub-005").read_bytes()
    _bold(fp, "sub-005").write_bytes(raw[: len(raw) // 2])
    _bold(fp, "sub-006").write_bytes(gzip.compress(b"this is not a NIfTI file\n" * 100))
    _rewrite(_bold(fp, "sub-007"), lambda d, a: (d[..., 0], a))
    _rewrite(_bold(fp, "sub-008"), lambda d, a: (d[..., :30], a))
    c = pd.read_csv(_conf(fp, "sub-008"), sep="\t").iloc[:30]
    c.to_csv(_conf(fp, "sub-008"), sep="\t", index=False, na_rep="n/a")

    def _nan(d, a):
        d[20, 20, 20, :] = np.nan
        return d, a
    _rewrite(_bold(fp, "sub-009"), _nan)
    _rewrite(_bold(fp, "sub-010"), lambda d, a: (np.zeros_like(d), a))
    mask = fp / "sub-011" / "func" / f"sub-011_task-rest_space-{SPACE}_desc-brain_mask.nii.gz"
    m = nib.load(mask)
    nib.save(nib.Nifti1Image(np.asarray(m.dataobj)[:-2], m.affine), mask)
    c = pd.read_csv(_conf(fp, "sub-012"), sep="\t").iloc[:90]
    c.to_csv(_conf(fp, "sub-012"), sep="\t", index=False, na_rep="n/a")
    c = pd.read_csv(_conf(fp, "sub-013"), sep="\t").drop(columns=["white_matter"])
    c.to_csv(_conf(fp, "sub-013"), sep="\t", index=False, na_rep="n/a")

    def _shift(d, a):
        a[:3, 3] += 400.0  # 40 cm away from the template: no overlap with the atlas
        return d, a
    _rewrite(_bold(fp, "sub-014"), _shift)
    _rewrite(fp / "sub-014" / "func" / f"sub-014_task-rest_space-{SPACE}_desc-brain_mask.nii.gz", _shift)
    for f in (fp / "sub-015" / "func").glob(f"*space-{SPACE}*"):  # fMRIPrep run with --output-spaces T1w
        f.rename(f.with_name(f.name.replace(f"space-{SPACE}", "space-T1w")))
    out = root / "out"
    # the BOLD path only: CBF and the multivariate cohort statistics need more than 4 good subjects
    cfg = write_config(root / "config.yaml", cohort, out, **MACHINERY_CONFIG)
    return run_snakemake(cfg, root), out, cohort


@pytest.mark.workflow
@pytest.mark.parametrize("sub", sorted(CATALOGUE))
def test_catalogue_row(catalogue_run, sub):
    proc, out, cohort = catalogue_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    what, step, text = CATALOGUE[sub]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(("rviflow ", "rviflow:")) and f" {sub}:" in ln]
    assert len(lines) == 1, (what, lines)
    assert text in lines[0] and (".nii.gz" in lines[0] or ".tsv" in lines[0]), (what, lines[0])
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t", keep_default_na=False)
    rows = qc[qc["participant_id"] == sub]
    failed = rows[rows["status"] == "failed"]
    assert len(failed) == 1 and failed["step"].iloc[0] == step and text in failed["reason"].iloc[0], what
    assert sub not in set(pd.read_csv(out / "group" / "parcels_reho.tsv", sep="\t")["participant_id"])


@pytest.mark.workflow
def test_good_subjects_and_cohort_survive(catalogue_run):
    proc, out, cohort = catalogue_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    parcels = pd.read_csv(out / "group" / "parcels_reho.tsv", sep="\t")
    assert sorted(parcels["participant_id"]) == GOOD
    eff = pd.read_csv(out / "group" / "effect_sizes.tsv", sep="\t")
    reho = eff[eff["measure"] == "reho"]
    assert len(reho) == 83 and ((reho["n_case"] == 2) & (reho["n_control"] == 2)).all()
    # fMRIPrep's n/a in the first row of derivative columns is handled, not rejected
    conf = pd.read_csv(_conf(cohort["fmriprep"], "sub-001"), sep="\t")
    assert conf["trans_x_derivative1"].isna().iloc[0]
    side = json.loads(next((out / "sub-001" / "func").glob("*_desc-denoised_bold.json")).read_text())
    assert side["status"] == "ok" and side["QC"]["n_volumes_kept"] == 100


@pytest.mark.parametrize("content, match", [
    ("participant_id\tdiagnosis\tage\tsex\tsite\nsub-01\tMDD\t30\tF\ta\nsub-01\tHC\t31\tM\ta\n", "sub-01 appears more than once"),
    ("participant_id\tdiagnosis\tage\tsex\tsite\nsub-../x\tMDD\t30\tF\ta\n", "'sub-../x' is not of the form sub-<label>"),
    ("participant_id\tdiagnosis\tage\tsex\tsite\nsub-a/b\tMDD\t30\tF\ta\n", "'sub-a/b' is not of the form sub-<label>"),
    ("participant_id\tdiagnosis\tage\tsex\tsite\n01\tMDD\t30\tF\ta\n", "'01' is not of the form sub-<label>"),
    ("participant_id\tdiagnosis\tage\tsex\tsite\nsub-01\tMDD\tforty\tF\ta\n", "sub-01: age = 'forty' is not a number"),
    ("", "participants table is empty"),
    ("participant_id\tdiagnosis\tage\tsex\tsite\n", "has a header but no rows"),
])
def test_participants_rows(tmp_path, content, match):
    f = tmp_path / "participants.tsv"
    f.write_text(content)
    with pytest.raises(InputError, match=match.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        read_participants(f, ["diagnosis", "age", "sex", "site"])


@pytest.mark.parametrize("label, match", [(None, "sub-02: diagnosis is missing"),
                                          ("bipolar", "sub-02: diagnosis = 'bipolar' is neither")])
def test_group_label_rows(tmp_path, label, match):
    f = tmp_path / "participants.tsv"
    f.write_text("participant_id\tdiagnosis\tage\nsub-01\tMDD\t30\nsub-02\t" + (label or "n/a") + "\t40\n"
                 "sub-03\tHC\t50\n")
    p = read_participants(f, ["diagnosis", "age"])
    with pytest.raises(InputError, match=match):
        design_matrix(p, "diagnosis", "MDD", "HC", ["age"], None)


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(reho_neighbourhood=27), "Additional properties are not allowed ('reho_neighbourhood'"),
    (lambda c: c.update(min_per_group="three"), "'three' is not of type 'integer'"),
    (lambda c: c.update(fmriprep_dir="/nonexistent/fmriprep"), "config fmriprep_dir: /nonexistent/fmriprep does not exist"),
    (lambda c: c.update(output_dir=c["bids_dir"] + "/out"), "is inside bids_dir"),
])
def test_config_rows(tmp_path, cohort16, edit, match):
    import yaml

    cfg = write_config(tmp_path / "c.yaml", cohort16, tmp_path / "out")
    data = yaml.safe_load(cfg.read_text())
    edit(data)
    cfg.write_text(yaml.safe_dump(data))
    proc = run_snakemake(cfg, tmp_path, "--dry-run")
    said = proc.stdout + proc.stderr  # snakemake prints parse-time errors on either stream
    assert proc.returncode != 0 and match in said, said[-2000:]
