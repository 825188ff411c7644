"""Real snakemake runs on synthetic cohorts: outputs, planted-effect recovery, bad input."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import recovered_vs_planted, run_snakemake, write_config

pytestmark = pytest.mark.workflow
SPACE = "MNI152NLin2009cAsym"


def test_pipeline_writes_every_output(pipeline_run):
    proc, out, cohort = pipeline_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "rviflow"
    # the run records the exact environment: the lock's digest and the locked versions it used
    from rviflow.pipeline import envlock

    gen, lock = desc["GeneratedBy"][0], envlock.locked("main")
    assert gen["Lock"] == f"locks/main.txt sha256:{envlock.lock_digest()}"
    assert all(gen["SoftwareVersions"][p] == lock[p] for p in ("numpy", "nilearn", "snakemake", "neuroharmonize"))
    report = (out / "report" / "rviflow_report.html").read_text()
    assert f"locks/main.txt sha256 {envlock.lock_digest()[:12]}" in report and f"nibabel {lock['nibabel']}" in report
    participants = pd.read_csv(cohort["participants"], sep="\t")
    for pid in participants["participant_id"]:
        func = out / pid / "func"
        stem = f"{pid}_task-rest_space-{SPACE}"
        for desc_ in ("reho", "mreho", "zreho"):
            img = nib.load(func / f"{stem}_desc-{desc_}_bold.nii.gz")
            assert img.ndim == 3
        side = json.loads((func / f"{stem}_desc-reho_bold.json").read_text())
        assert side["status"] == "ok" and side["Parameters"]["neighbourhood"] == 27
        assert "nilearn" in side["SoftwareVersions"]
        w = np.asarray(nib.load(func / f"{stem}_desc-reho_bold.nii.gz").dataobj)
        mask = np.asarray(nib.load(func / f"{stem}_desc-reho_mask.nii.gz").dataobj) > 0
        assert 0 < w[mask].min() and w[mask].max() <= 1 and (w[~mask] == 0).all()
        z = np.asarray(nib.load(func / f"{stem}_desc-zreho_bold.nii.gz").dataobj)[mask]
        assert abs(z.mean()) < 1e-4 and abs(z.std(ddof=1) - 1) < 1e-3
        # nipype provenance is kept under the output tree
        assert (out / "work" / "reho" / pid / "func" / f"{pid}_task-rest" / "reho" / "_report").is_dir()
    parcels = pd.read_csv(out / "group" / "parcels_reho.tsv", sep="\t")
    assert list(parcels.columns[:2]) == ["participant_id", "session"]
    assert len(parcels) == len(participants) and parcels.shape[1] == 2 + 83
    eff = pd.read_csv(out / "group" / "effect_sizes.tsv", sep="\t")
    for col in ("measure", "region", "d", "ci_low", "ci_high", "p", "q_fdr", "n_case", "n_control"):
        assert col in eff.columns
    assert (eff["measure"] == "reho").sum() == 83 and (eff["ci_low"] < eff["d"]).all() and (eff["d"] < eff["ci_high"]).all()
    assert (eff["n_case"] == 8).all() and (eff["n_control"] == 8).all()
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t")
    assert list(qc.columns[:1]) == ["participant_id"] and {"step", "status", "reason"} <= set(qc.columns)
    assert (qc["status"] == "ok").all()
    assert set(qc["step"]) == {"denoise", "reho", "parcellate", "combine_reho", "cohort_reho", "cbf", "parcellate_cbf",
                               "combine_cbf", "cohort_cbf", "thickness", "cohort_thickness"}


def test_planted_reho_deficit_is_recovered(pipeline_run):
    """Planted truth (truth/effects.tsv) vs the recovered d: sign, and larger than elsewhere."""
    proc, out, cohort = pipeline_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    m, eff = recovered_vs_planted(out, cohort, "reho")
    planted = m["planted_d"] != 0
    assert planted.sum() == 12
    assert m.loc[planted, "d"].mean() < 0 and np.sign(m.loc[planted, "d"].median()) == np.sign(m.loc[planted, "planted_d"].iloc[0])
    assert m.loc[planted, "d"].abs().mean() > m.loc[~planted, "d"].abs().mean()


def test_rerun_is_a_no_op(pipeline_run):
    proc, out, cohort = pipeline_run
    cfg = out.parents[1] / "config.yaml"
    dry = run_snakemake(cfg, out.parents[1], "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_config_schema_failure_names_the_key(tmp_path, cohort16):
    cfg = write_config(tmp_path / "c.yaml", cohort16, tmp_path / "out")
    data = (tmp_path / "c.yaml").read_text().replace("task: rest\n", "")
    (tmp_path / "c.yaml").write_text(data)
    proc = run_snakemake(cfg, tmp_path)
    assert proc.returncode != 0
    assert "'task' is a required property" in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()  # failed before any job ran

    cfg = write_config(tmp_path / "c2.yaml", cohort16, tmp_path / "out", reho={"neighbourhood": 8})
    proc = run_snakemake(cfg, tmp_path)
    assert proc.returncode != 0 and "neighbourhood" in proc.stdout + proc.stderr and "8 is not one of [7, 19, 27]" in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory):
    """9 subjects: sub-002 lost its confounds file, sub-004's BOLD is 3-D, sub-099 has no row;
    bad ASL (its CBF fails, its ReHo does not): sub-005's aslcontext has one row too many, and the
    rows of ASL_ROWS (sub-007 to sub-009). CBF is left with sub-001, sub-006 (MDD), sub-003 and
    sub-004 (HC): the fewest the effect sizes take."""
    from rviflow.synth.cohort import write_cohort

    root = tmp_path_factory.mktemp("broken")
    cohort = write_cohort(root / "cohort", n_subjects=9, seed=5, n_sites=2)
    func = cohort["fmriprep"] / "sub-002" / "func"
    (func / "sub-002_task-rest_desc-confounds_timeseries.tsv").unlink()
    bold4 = cohort["fmriprep"] / "sub-004" / "func" / f"sub-004_task-rest_space-{SPACE}_desc-preproc_bold.nii.gz"
    img = nib.load(bold4)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine), bold4)
    extra = cohort["fmriprep"] / "sub-099"
    shutil.copytree(cohort["fmriprep"] / "sub-001", extra)
    for f in extra.glob("func/*"):
        f.rename(f.with_name(f.name.replace("sub-001", "sub-099")))
    ctx = cohort["bids"] / "sub-005" / "perf" / f"sub-005_space-{SPACE}_aslcontext.tsv"
    ctx.write_text(ctx.read_text() + "label\n")
    for sub, (what, _, _) in ASL_ROWS.items():
        _break_asl(cohort["bids"] / sub / "perf" / f"{sub}_space-{SPACE}", what)
    out = root / "out"
    # 7 subjects over 2 sites: too few for ComBat, RVI folds and nested CV (tested in test_cohort_workflow.py)
    cohort_off = dict(harmonize=False, rvi={"enabled": False}, prediction={"enabled": False},
                      colocalisation={"enabled": False})
    cfg = write_config(root / "config.yaml", cohort, out, min_per_group=2, cohort=cohort_off)
    return run_snakemake(cfg, root), out


def test_missing_confounds_one_clear_message(broken_run):
    proc, out = broken_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if "sub-002" in ln and "confounds" in ln]
    assert len(lines) == 1, lines
    assert "sub-002_task-rest_desc-confounds_timeseries.tsv" in lines[0]
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t")
    reho_chain = ["discover", "denoise", "reho", "parcellate", "cohort_reho"]  # (its CBF / thickness rows are ok)
    row = qc[(qc["participant_id"] == "sub-002") & qc["step"].isin(reho_chain)]
    assert list(row["status"]) == ["failed"] and "confounds file missing" in row["reason"].iloc[0]


def test_bad_subject_is_excluded_and_others_kept(broken_run):
    proc, out = broken_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if "sub-004" in ln and "3 dimensions" in ln]
    assert len(lines) >= 1 and "desc-preproc_bold.nii.gz" in lines[0]
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t")
    bad = qc[(qc["participant_id"] == "sub-004") & (qc["status"] == "failed")]
    assert len(bad) == 1 and bad["step"].iloc[0] == "denoise" and "4-D" in bad["reason"].iloc[0]
    orphan = qc[qc["participant_id"] == "sub-099"]
    assert list(orphan["status"]) == ["failed"] and "no row in participants.tsv" in orphan["reason"].iloc[0]
    parcels = pd.read_csv(out / "group" / "parcels_reho.tsv", sep="\t")
    assert sorted(parcels["participant_id"]) == ["sub-001", "sub-003", "sub-005", "sub-006", "sub-007", "sub-008",
                                                    "sub-009"]
    eff = pd.read_csv(out / "group" / "effect_sizes.tsv", sep="\t")
    eff = eff[eff["measure"] == "reho"]
    assert (eff["n_case"] + eff["n_control"] == 7).all() and eff["d"].notna().all()
    # the failed step leaves a status sidecar saying why, never a number
    side = out / "sub-004" / "func" / f"sub-004_task-rest_space-{SPACE}_desc-reho_parcels.json"
    assert json.loads(side.read_text())["status"] == "failed"


#: subject -> (how its ASL is broken, file named in the message, text of the message and QC reason)
ASL_ROWS = {
    "sub-007": ("sidecar field missing", "_asl.json", "required sidecar field MagneticFieldStrength missing"),
    "sub-008": ("PASL without bolus cut-off", "_asl.json",
                "PASL without bolus cut-off (field BolusCutOffFlag is false)"),
    "sub-009": ("label / control swapped", "_aslcontext.tsv",
                "ml/100 g/min (negative): label and control look swapped: check the order of volume_type"),
}


def _break_asl(stem, what):
    side = stem.with_name(stem.name + "_asl.json")
    meta = json.loads(side.read_text())
    if what == "sidecar field missing":
        del meta["MagneticFieldStrength"]
    elif what == "PASL without bolus cut-off":
        meta.pop("LabelingDuration", None)
        meta.update(ArterialSpinLabelingType="PASL", BolusCutOffFlag=False)
    else:
        ctx = stem.with_name(stem.name + "_aslcontext.tsv")
        swap = {"control": "label", "label": "control"}
        ctx.write_text("\n".join(swap.get(v, v) for v in ctx.read_text().splitlines()) + "\n")
    side.write_text(json.dumps(meta))


@pytest.mark.parametrize("sub", sorted(ASL_ROWS))
def test_asl_catalogue_row(broken_run, sub):
    """Bad ASL: one line naming subject, file and problem; CBF failed in qc.tsv; ReHo kept."""
    proc, out = broken_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    what, name, text = ASL_ROWS[sub]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("rviflow ") and f" {sub}:" in ln]
    assert len(lines) == 1, (what, lines)
    assert f"{sub}_space-{SPACE}{name}" in lines[0] and text in lines[0], (what, lines[0])
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t", keep_default_na=False)
    row = qc[(qc["participant_id"] == sub) & (qc["status"] == "failed")]
    assert list(row["step"]) == ["cbf"] and text in row["reason"].iloc[0], what
    assert sub not in set(pd.read_csv(out / "group" / "parcels_cbf.tsv", sep="\t")["participant_id"])
    assert sub in set(pd.read_csv(out / "group" / "parcels_reho.tsv", sep="\t")["participant_id"])
    eff = pd.read_csv(out / "group" / "effect_sizes.tsv", sep="\t")
    cbf = eff[eff["measure"] == "cbf"]
    assert len(cbf) and (cbf["n_case"] + cbf["n_control"] == 4).all()  # sub-001, 003, 004, 006


def test_bad_asl_one_clear_message(broken_run):
    """A bad ASL series: one line naming subject, file and field; CBF step failed in qc.tsv, ReHo kept."""
    proc, out = broken_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if "sub-005" in ln and "aslcontext" in ln]
    assert len(lines) == 1, lines
    assert "sub-005_space-MNI152NLin2009cAsym_aslcontext.tsv" in lines[0] and "volume_type" in lines[0]
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t", keep_default_na=False)
    row = qc[(qc["participant_id"] == "sub-005") & (qc["status"] == "failed")]
    assert list(row["step"]) == ["cbf"] and "10 rows but the ASL image has 9 volumes" in row["reason"].iloc[0]
    cbf = pd.read_csv(out / "group" / "parcels_cbf.tsv", sep="\t")
    assert "sub-005" not in set(cbf["participant_id"])
    assert "sub-005" in set(pd.read_csv(out / "group" / "parcels_reho.tsv", sep="\t")["participant_id"])


def test_every_rule_writes_its_log(pipeline_run):
    """Every script writes its rule's log through rviflow.pipeline.runner (issue: 9 of 14 logs were
    0 bytes after a demo): no log is empty, and each names its rule on its first line."""
    _, out, _ = pipeline_run
    logs = sorted((out / "logs").rglob("*.log"))
    kinds = {p.relative_to(out / "logs").parts[0].removesuffix(".log") for p in logs}  # logs/<step>/<scan>.log
    assert {"reho_scan", "cbf", "parcellate_cbf", "collect_reho", "collect_cbf", "effect_sizes", "qc_table", "report",
            "participants_table", "dataset_description", "rvi", "prediction"} <= kinds, kinds
    empty = [str(p.relative_to(out)) for p in logs if p.stat().st_size == 0]
    assert not empty, empty
    unnamed = [str(p.relative_to(out)) for p in logs if not p.read_text().startswith("rviflow: rule ")]
    assert not unnamed, unnamed


def test_a_failing_step_has_its_error_in_its_log(broken_run):
    """sub-004's 3-D BOLD fails its denoise step: the one-line reason is in that scan's job log
    (it used to reach only Snakemake's stream)."""
    _, out = broken_run
    log = next((out / "logs" / "reho_scan").rglob("sub-004*.log")).read_text()  # logs/reho_scan/<scan>.log
    assert "sub-004" in log and "3 dimensions" in log, log
