"""Real cohort layouts end to end through `rviflow run` (issue 15): several runs, sessions,
acquisitions, fMRIPrep generations, a messy participants.tsv, failing cohort rules.

Layouts, sidecars and participants tables come from bids-standard/bids-examples
(ds000001-fmriprep + ds001's participants.tsv, 7t_trt; tests/data/real_layouts), confounds are
nilearn's real fMRIPrep files; only the images are generated (tests/layouts.py). Checked
against independent references: a subject's combined ReHo is the kept-volume-weighted mean of
its per-run parcel files (read here from the per-scan outputs), the configured session equals a
run on that session alone, the planted deficit is recovered in the planted session only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from layouts import DATA, camelcase, lengthen, nilearn_confounds, write_cohort
from rviflow.synth.cohort import PLANTED_REGIONS

pytestmark = pytest.mark.workflow
SPACE = "MNI152NLin2009cAsym"
FAST = dict(batch_size=100, min_per_group=3, cbf={"enabled": "no"}, denoise={"min_timepoints": 20})
COHORT_OFF = {"thickness": {"source": "none"}, "rvi": {"enabled": False}, "prediction": {"enabled": False},
              "colocalisation": {"enabled": False}, "n_boot": 100}


def rviflow_run(root: Path, cfg: dict, *extra: str) -> subprocess.CompletedProcess:
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "rviflow.cli", "run", "--configfile", str(path), "--cores", "2",
                           *extra], capture_output=True, text=True, timeout=900, cwd=root)


def assert_outcome_files(out: Path, proc) -> pd.DataFrame:
    """qc.tsv and the report exist, and the run ended with its summary line."""
    assert (out / "report" / "rviflow_report.html").stat().st_size > 1000
    assert f"report: {out / 'report' / 'rviflow_report.html'}" in proc.stderr, proc.stderr[-3000:]
    return pd.read_csv(out / "group" / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)


def one_line(stderr: str, needle: str) -> str:
    lines = [ln for ln in stderr.splitlines() if needle in ln]
    assert lines, stderr[-3000:]
    return lines[0]


# --- ds000001-fmriprep layout: 3 runs, res-2, a task, two fMRIPrep generations, messy participants ---

@pytest.fixture(scope="module")
def runs_cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds000001")
    p = pd.read_csv(DATA / "ds001_participants.tsv", sep="\t", dtype=str)  # real: participant_id, sex, age
    p["diagnosis"] = ["MDD", "HC"] * 8
    p["site"] = ["A", "A", "B", "B"] * 4
    p.loc[1, "diagnosis"] = "n/a"     # sub-02: missing group
    p.loc[2, "diagnosis"] = "BD"      # sub-03: a third label
    p.loc[4, "diagnosis"] = "MDD "    # sub-05: a trailing space (accepted)
    p.loc[14, "age"] = "89+"          # sub-15: no scans (below) and a capped age
    scanned = list(p["participant_id"][:14])
    scans, confounds = [], {}
    modern, older = nilearn_confounds("timeseries"), nilearn_confounds("regressors")
    for i, pid in enumerate(scanned):
        for run in ("1", "2", "3"):
            k = len(scans)
            scans.append(dict(sub=pid[4:], task="balloonanalogrisktask", run=run, space=SPACE, res="2", desc="preproc"))
            conf = lengthen(older if i % 2 else modern, 3 if run == "3" else 2)  # runs of unequal length
            conf.attrs["confounds_kind"] = "regressors" if i % 2 else "timeseries"  # fMRIPrep 1.4-20.1 / >= 20.2
            if pid == "sub-07" and run == "2":  # concatenated runs: n/a in the middle
                conf = pd.concat([pd.read_csv(modern, sep="\t", na_values="n/a")] * 2, ignore_index=True)
                conf.attrs["confounds_kind"] = "timeseries"
            confounds[k] = conf
    sidecar = json.loads((DATA / "ds000001-fmriprep_desc-preproc_bold.json").read_text())  # real: TR 2.0
    c = write_cohort(root, p, scans, confounds=confounds, voxel_mm=6.0, bold_sidecar=sidecar,
                     participants_text=p.to_csv(sep="\t", index=False))
    for f in (c["fmriprep"] / "sub-06" / "func").glob("*.nii.gz"):  # uncompressed NIfTI for one subject
        import nibabel as nib

        nib.save(nib.load(f), str(f)[:-3])
        f.unlink()
    out = root / "out"
    cfg = dict(bids_dir=str(c["bids"]), fmriprep_dir=str(c["fmriprep"]), output_dir=str(out),
               task="balloonanalogrisktask", space=SPACE, **FAST,
               cohort={**COHORT_OFF, "harmonize": True, "symptoms": ["hamd"]})
    proc = rviflow_run(root, cfg)
    return proc, out, root, cfg


def test_runs_are_combined_by_kept_volumes(runs_cohort):
    proc, out, root, _ = runs_cohort
    assert proc.returncode == 0, proc.stderr[-3000:]
    scans = pd.read_csv(out / "group" / "parcels_reho_scans.tsv", sep="\t", dtype={"run": str, "session": str})
    table = pd.read_csv(out / "group" / "parcels_reho.tsv", sep="\t")
    assert {"run", "acq", "n_volumes_kept"} <= set(scans.columns)
    assert not table["participant_id"].duplicated().any()
    # subjects: 14 scanned, sub-02 (n/a) and sub-03 (BD) excluded before any job
    assert set(table["participant_id"]) == {f"sub-{i:02d}" for i in range(1, 15)} - {"sub-02", "sub-03"}
    assert not list((out / "sub-02").glob("func/*")) and not (out / "sub-03").exists()
    regions = [c for c in table.columns if c not in ("participant_id", "session")]
    for pid in ("sub-01", "sub-04", "sub-07"):
        # reference: the per-scan outputs, weighted by the volumes the denoising sidecar kept
        vals, weights = [], []
        for run in ("1", "2", "3"):
            stem = out / pid / "func" / f"{pid}_task-balloonanalogrisktask_run-{run}_space-{SPACE}_res-2"
            side = json.loads(Path(f"{stem}_desc-denoised_bold.json").read_text())
            if side["status"] != "ok":
                continue
            vals.append(pd.read_csv(f"{stem}_desc-reho_parcels.tsv", sep="\t")[regions].to_numpy(float)[0])
            weights.append(side["QC"]["n_volumes_kept"])
        expected = np.average(np.array(vals), axis=0, weights=weights)
        got = table.set_index("participant_id").loc[pid, regions].to_numpy(float)
        assert np.allclose(got, expected, rtol=1e-5, equal_nan=True), pid
        assert len(vals) == (2 if pid == "sub-07" else 3) and len(set(weights)) > 1 or pid == "sub-07"
    qc = assert_outcome_files(out, proc)
    assert {"run", "acq", "session"} <= set(qc.columns)
    bad = qc[(qc["participant_id"] == "sub-07") & (qc["status"] == "failed")]
    assert list(bad["run"]) == ["2"] and "has n/a beyond the first row" in bad["reason"].iloc[0]
    assert "Traceback" not in bad["reason"].iloc[0] and "infs or NaNs" not in bad["reason"].iloc[0]
    combined = qc[(qc["participant_id"] == "sub-07") & (qc["step"] == "combine_reho")]["reason"].iloc[0]
    assert combined.startswith("2 scan(s) combined (mean): run-1 (w=") and "run-3" in combined
    excl = qc[qc["participant_id"] == "sub-03"]
    assert "BD" in excl["reason"].iloc[0] and "groups.case" in excl["reason"].iloc[0]
    # every participants.tsv problem listed before any job, one line each
    assert "sub-02: diagnosis = n/a is missing (config groups.column)" in proc.stderr
    assert "sub-15: age = '89+' is not a number (config covariates)" in proc.stderr
    assert "1 participant(s) left out with a diagnosis other than 'MDD' / 'HC': BD 1" in proc.stderr
    assert "cohort.symptoms hamd not in" in one_line(proc.stderr, "cohort.symptoms")  # the configured one, named
    # res- kept in the names; .nii input read; the cohort rules take the pipeline's own table
    assert list((out / "sub-01" / "func").glob(f"*_space-{SPACE}_res-2_desc-reho_bold.nii.gz"))
    assert (qc[qc["participant_id"] == "sub-06"]["step"] == "cohort_reho").any()
    assert (out / "group" / "harmonized" / "parcels_reho.tsv").exists()
    assert pd.read_csv(out / "group" / "effect_size_ratio.tsv", sep="\t") is not None
    html = (out / "report" / "rviflow_report.html").read_text()
    assert "task-balloonanalogrisktask BOLD (a task, not resting state)" in html
    assert "12 subjects analysed (35 scans)" in html
    assert "rviflow: 12 subjects included" in proc.stderr


def test_failing_cohort_rule_still_writes_qc_and_report(runs_cohort):
    """The same cohort with a ComBat limit it cannot meet: harmonize fails with one line naming the
    key that turns it off, the rules after it say 'not run', qc.tsv and the report are written."""
    _, out, root, cfg = runs_cohort
    cfg = {**cfg, "cohort": {**cfg["cohort"], "min_per_site": 50}}
    proc = rviflow_run(root, cfg)
    qc = assert_outcome_files(out, proc)
    line = one_line(proc.stderr, "rviflow harmonize:")
    assert "set cohort.harmonize: false" in line
    failed = qc[qc["participant_id"] == "cohort"]
    assert "not run" in failed["reason"].iloc[0]
    html = (out / "report" / "rviflow_report.html").read_text()
    assert "failed" in html and "cohort.harmonize: false" in html
    assert "failed: " in one_line(proc.stderr, "rviflow: 0 subjects included")


# --- 7t_trt layout: ses-1 / ses-2, acq-fullbrain run-1/2 + a prefrontal slab -----------------------

def _trt_cohort(root: Path, sessions=("1", "2")) -> dict:
    p = pd.read_csv(DATA / "7t_trt_participants.tsv", sep="\t").head(8)  # real: sex, age_at_first_scan_years
    p["diagnosis"] = ["MDD", "HC"] * 4
    files = [ln for ln in (DATA / "7t_trt_func_files.txt").read_text().split()
             if any(f"/sub-{i:02d}/" in ln for i in range(1, 9))]
    scans = [{**{k: v for k, v in __import__("rviflow.io.bids", fromlist=["x"]).parse_entities(ln.split("/")[-1]).items()},
              "space": SPACE, "desc": "preproc"} for ln in files]
    scans = [s for s in scans if s["ses"] in sessions]
    sidecar = json.loads((DATA / "7t_trt_task-rest_acq-fullbrain_bold.json").read_text())  # real: TR 3.0
    return write_cohort(root, p, scans, planted_sessions={"1"}, voxel_mm=6.0, n_t=60, bold_sidecar=sidecar,
                        coverage={"prefrontal": 0.3}, planted_d=4.0)


def _trt_config(c, out, **kw):
    return dict(bids_dir=str(c["bids"]), fmriprep_dir=str(c["fmriprep"]), output_dir=str(out), task="rest",
                space=SPACE, covariates=["age_at_first_scan_years", "sex"], site_column="", **FAST,
                cohort={**COHORT_OFF, "harmonize": False}, **kw)



def test_a_slab_is_excluded_by_default_and_analysed_on_its_covered_regions_by_config(tmp_path):
    """7t_trt's acq-prefrontal slab (~30% of the brain, issue #15): by default each scan is
    excluded naming how many regions it covers and the key; with atlas.min_regions 0 and
    min_coverage 0.5 it is analysed on its covered regions: those have values in every subject,
    the others are n/a and left out of the effect sizes (not a run failure)."""
    c = _trt_cohort(tmp_path, sessions=("1",))
    proc = rviflow_run(tmp_path, _trt_config(c, tmp_path / "excluded", acq="prefrontal"))  # (a dir named
    # "default" in the working directory would be taken by Snakemake for its workflow profile)
    qc = assert_outcome_files(tmp_path / "excluded", proc)
    bad = qc[(qc["acq"] == "prefrontal") & (qc["status"] == "failed")]
    assert len(bad) == 8 and bad["reason"].str.contains(r"covers 2\d of 83 atlas regions.*atlas\.min_regions").all()

    out = tmp_path / "slab"
    proc = rviflow_run(tmp_path, _trt_config(c, out, acq="prefrontal", atlas={"min_regions": 0.0, "min_coverage": 0.5}))
    assert proc.returncode == 0, proc.stderr[-3000:]
    qc = assert_outcome_files(out, proc)
    assert not (qc["status"] == "failed").any(), qc[qc["status"] == "failed"]
    parcels = pd.read_csv(out / "group" / "parcels_reho.tsv", sep="\t", na_values="n/a")
    regions = [r for r in parcels.columns if r not in ("participant_id", "session")]
    has = parcels[regions].notna()
    assert len(parcels) == 8 and has.eq(has.iloc[0]).all().all()  # the same slab in everyone
    kept = [r for r in regions if has[r].iloc[0]]
    assert 5 <= len(kept) < 42
    side = json.loads(next(out.glob("sub-01/**/*acq-prefrontal*desc-reho_parcels.json")).read_text())
    assert side["QC"]["regions_with_data"] == len(kept)
    assert all(side["QC"]["covered_fraction"][r] >= 0.5 for r in kept)
    eff = pd.read_csv(out / "group" / "effect_sizes.tsv", sep="\t")
    assert sorted(eff["region"]) == sorted(kept) and eff["d"].notna().all()
    assert "regions have no data in any subject" in (out / "logs" / "effect_sizes.log").read_text()

def test_sessions_need_a_choice_and_the_choice_is_that_sessions_result(tmp_path):
    both = _trt_cohort(tmp_path / "both")
    proc = rviflow_run(tmp_path / "both", _trt_config(both, tmp_path / "both" / "out"))
    assert proc.returncode != 0
    line = one_line(proc.stderr, "several sessions found")
    assert "(ses-1, ses-2)" in line and "set `session`" in line and "Traceback" not in proc.stderr
    assert not (tmp_path / "both" / "out" / "sub-01").exists()  # stopped before any job

    proc = rviflow_run(tmp_path / "both", _trt_config(both, tmp_path / "both" / "out", session="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "both" / "out"
    qc = assert_outcome_files(out, proc)
    ses = qc[qc["step"] == "session"]
    assert len(ses) == 8 and set(ses["session"]) == {"1"} and "config session" in ses["reason"].iloc[0]
    slab = qc[(qc["acq"] == "prefrontal") & (qc["status"] == "failed")]
    assert len(slab) == 8 and slab["reason"].str.contains(r"covers 2\d of 83 atlas regions").all()
    assert not list(out.glob("sub-*/ses-2"))  # the other session is not processed
    combined = qc[qc["step"] == "combine_reho"]["reason"]
    assert combined.str.contains("acq-fullbrain run-1").all() and not combined.str.contains("prefrontal").any()

    only = _trt_cohort(tmp_path / "one", sessions=("1",))
    proc1 = rviflow_run(tmp_path / "one", _trt_config(only, tmp_path / "one" / "out"))
    assert proc1.returncode == 0, proc1.stderr[-3000:]
    a = pd.read_csv(out / "group" / "effect_sizes.tsv", sep="\t")
    b = pd.read_csv(tmp_path / "one" / "out" / "group" / "effect_sizes.tsv", sep="\t")
    pd.testing.assert_frame_equal(a, b)
    # the planted (ses-1) deficit is what the analysis sees
    from rviflow.preprocess.parcellate import DK_LABELS, read_labels

    labels = read_labels(DK_LABELS)
    planted = set(labels.loc[labels["label"].isin(PLANTED_REGIONS), "name"])
    d = a.set_index("region")["d"]
    assert d[d.index.isin(planted)].mean() < -0.5 < d[~d.index.isin(planted)].mean()
    html = (out / "report" / "rviflow_report.html").read_text()
    assert "Session analysed: ses-1 (8 subjects)" in html
    assert "<td>1.0</td>" not in html and "<td>1</td>" in html  # session labels as text, not numbers


# --- refused before any job, and a cohort where every subject fails --------------------------------

def test_config_conflict_and_unusable_fmriprep_version(tmp_path):
    p = pd.DataFrame(dict(participant_id=[f"sub-{i}" for i in range(1, 5)], dx=[1, 0, 1, 0], age=[30, 40, 50, 60],
                          sex=["F", "M", "F", "M"], site=["A", "A", "B", "B"]))
    old = camelcase(lengthen(nilearn_confounds("regressors"), 2))  # fMRIPrep 1.2-1.3 column names
    old.attrs["confounds_kind"] = "regressors"
    scans = [dict(sub=str(i), task="rest", space=SPACE, desc="preproc") for i in range(1, 5)]
    c = write_cohort(tmp_path, p.rename(columns={"dx": "diagnosis"}), scans, confounds={k: old for k in range(4)},
                     voxel_mm=6.0, participants_text=p.to_csv(sep="\t", index=False))
    cfg = dict(bids_dir=str(c["bids"]), fmriprep_dir=str(c["fmriprep"]), output_dir=str(tmp_path / "out"), task="rest",
               space=SPACE, groups={"column": "dx", "case": 1, "control": 0}, site_column="", **FAST,
               cohort={**COHORT_OFF, "harmonize": True})
    proc = rviflow_run(tmp_path, cfg)
    assert proc.returncode != 0
    assert "site_column is empty but cohort.harmonize is true" in one_line(proc.stderr, "site_column")
    proc = rviflow_run(tmp_path, {**cfg, "cohort": {**COHORT_OFF, "harmonize": False}})
    out = tmp_path / "out"
    qc = assert_outcome_files(out, proc)
    den = qc[qc["step"] == "denoise"]
    assert len(den) == 4 and (den["status"] == "failed").all()
    assert den["reason"].str.contains("fMRIPrep 1.2-1.3 column names").all()
    assert "rviflow: 0 subjects included, 4 excluded" in proc.stderr
    html = (out / "report" / "rviflow_report.html").read_text()
    assert "fMRIPrep 1.2-1.3" in html


def test_plain_snakemake_works_from_any_directory(tmp_path):
    """The README's plain-snakemake command, run outside the repository (profile path absolute)."""
    p = pd.DataFrame(dict(participant_id=["sub-1", "sub-2"], diagnosis=["MDD", "HC"], age=[30, 40], sex=["F", "M"]))
    c = write_cohort(tmp_path, p, [dict(sub=s, task="rest", space=SPACE, desc="preproc") for s in "12"], voxel_mm=6.0)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(dict(bids_dir=str(c["bids"]), fmriprep_dir=str(c["fmriprep"]), site_column="",
                                       cohort={"harmonize": False},
                                       output_dir=str(tmp_path / "out"), task="rest", space=SPACE)))
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--profile",
                           str(REPO / "config" / "profiles" / "default"), "--snakefile", str(REPO / "Snakefile"),
                           "--configfile", str(cfg), "--cores", "1", "-n"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_failed_job_still_ends_with_qc_and_report(tmp_path):
    """on_subject_error: fail and one subject with fMRIPrep 1.3 confounds: the run fails, and still
    ends with qc.tsv, a fresh report (an old one is replaced) and the summary line."""
    p = pd.DataFrame(dict(participant_id=["sub-1", "sub-2", "sub-3"], diagnosis=["MDD", "HC", "MDD"], age=[30, 40, 50],
                          sex=["F", "M", "F"]))
    old = camelcase(lengthen(nilearn_confounds("regressors"), 2))
    old.attrs["confounds_kind"] = "regressors"
    c = write_cohort(tmp_path, p, [dict(sub=s, task="rest", space=SPACE, desc="preproc") for s in "123"],
                     confounds={1: old}, voxel_mm=6.0)
    out = tmp_path / "out"
    (out / "report").mkdir(parents=True)
    (out / "report" / "rviflow_report.html").write_text("an old report")
    cfg = dict(bids_dir=str(c["bids"]), fmriprep_dir=str(c["fmriprep"]), output_dir=str(out), task="rest", space=SPACE,
               site_column="", on_subject_error="fail", **{**FAST, "batch_size": 0},
               cohort={**COHORT_OFF, "harmonize": False})
    proc = rviflow_run(tmp_path, cfg)
    assert proc.returncode != 0
    assert "fMRIPrep 1.2-1.3 column names" in one_line(proc.stderr, "rviflow denoise: sub-2")
    qc = assert_outcome_files(out, proc)
    assert list(qc.columns[:4]) == ["participant_id", "session", "run", "acq"]  # written by the error hook
    assert "an old report" not in (out / "report" / "rviflow_report.html").read_text()
