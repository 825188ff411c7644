"""Batch mode (config batch_size > 0; rviflow.pipeline.batches): many scans' per-scan steps per job.

Checked against the per-scan mode as the reference: the same cohort run per scan and in batches
gives identical derivatives (NIfTI arrays, parcel tables, sidecars, QC), with real snakemake runs.
Batch membership is stable, so adding subjects runs only the new batch (read from the run's
log) and rewrites no file of a subject already done.
"""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import MACHINERY_CONFIG, assert_same_outputs, finished_jobs, output_mtimes, run_snakemake, write_config
from rviflow.pipeline.batches import assign_batches, run_batch

NEW = ("sub-007", "sub-008")
BAD = "sub-002"


# --- membership --------------------------------------------------------------------------------

def test_batches_are_stable_when_scans_arrive_and_leave(tmp_path):
    manifest = tmp_path / "batches.tsv"
    keys = [f"sub-{i:02d}/func/sub-{i:02d}_task-rest" for i in range(1, 8)]
    first = assign_batches(keys, manifest, 3)
    assert list(first) == ["00000", "00001", "00002"]
    assert [len(v) for v in first.values()] == [3, 3, 1]
    assert sorted(sum(first.values(), [])) == keys
    stamp = manifest.stat().st_mtime_ns
    assert assign_batches(list(reversed(keys)), manifest, 3) == first  # order of discovery does not matter
    assert manifest.stat().st_mtime_ns == stamp  # unchanged membership: manifest not rewritten

    # two new scans sort *before* the others: they still go into a new batch, the old ones stay
    new = ["sub-00/func/sub-00_task-rest", "sub-01b/func/sub-01b_task-rest"]
    second = assign_batches(keys + new, manifest, 3)
    assert {b: second[b] for b in first} == first
    assert second["00003"] == sorted(new)

    # a scan removed leaves its batch (that batch's inputs change; the others do not)
    third = assign_batches([k for k in keys + new if k != keys[4]], manifest, 3)
    assert third["00001"] == [k for k in first["00001"] if k != keys[4]]
    assert {b: third[b] for b in ("00000", "00002", "00003")} == {b: second[b] for b in ("00000", "00002", "00003")}
    with pytest.raises(ValueError, match="batch size"):
        assign_batches(keys, manifest, 0)


def test_run_batch_records_each_scans_status_and_removes_intermediates(tmp_path, monkeypatch):
    from rviflow.pipeline import batches

    calls = []

    def fake(**kw):
        calls.append(kw["participant_id"])
        if kw["participant_id"] == "sub-02":
            (tmp_path / "sub-02.json").write_text('{"status": "failed", "reason": "sub-02: bold.nii.gz: not 4-D"}')
            return False
        return True

    monkeypatch.setitem(batches.STEPS, "denoise", fake)
    temp = tmp_path / "denoised.nii.gz"
    temp.write_text("x")
    plan = [dict(key=f"k{i}", participant_id=f"sub-0{i}",
                 steps=[dict(step="denoise", kwargs=dict(participant_id=f"sub-0{i}", out_json=str(tmp_path / f"sub-0{i}.json")))])
            for i in (1, 2, 3)]
    table = run_batch(plan, tmp_path / "record.tsv", [str(temp)])
    assert calls == ["sub-01", "sub-02", "sub-03"]  # one bad subject does not stop the batch
    assert list(table["status"]) == ["ok", "failed", "ok"]
    assert table["reason"][1] == "sub-02: bold.nii.gz: not 4-D"
    assert not temp.exists()
    assert pd.read_csv(tmp_path / "record.tsv", sep="\t", keep_default_na=False).equals(table)


# --- real runs ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def batch_runs(tmp_path_factory):
    """8 subjects with ASL, sub-002's BOLD 3-D. Batch mode (4 per batch): 6 subjects, then
    sub-007/008 arrive; the per-scan mode on all 8 is the reference."""
    from rviflow.synth.cohort import write_cohort

    root = tmp_path_factory.mktemp("batches")
    cohort = write_cohort(root / "cohort", n_subjects=8, seed=5, n_sites=2, asl=True)
    bold = next((cohort["fmriprep"] / BAD / "func").glob("*_desc-preproc_bold.nii.gz"))
    img = nib.load(bold)  # a 3-D image where 4-D is needed: this subject's ReHo chain fails
    nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine, img.header).to_filename(bold)
    participants = pd.read_csv(cohort["participants"], sep="\t", dtype={"participant_id": str})
    held = root / "held"
    for sub in NEW:
        for tree in ("fmriprep", "bids"):
            shutil.move(cohort[tree] / sub, held / tree / sub)
    participants[~participants["participant_id"].isin(NEW)].to_csv(cohort["participants"], sep="\t", index=False)
    settings = dict(MACHINERY_CONFIG, cbf={"enabled": "yes"})
    runs = {}
    cfg = write_config(root / "batch.yaml", cohort, root / "batch", batch_size=4, **settings)
    for name in ("first", "added"):
        if name == "added":
            before = output_mtimes(root / "batch", sorted(set(participants["participant_id"]) - set(NEW)))
            for sub in NEW:
                for tree in ("fmriprep", "bids"):
                    shutil.move(held / tree / sub, cohort[tree] / sub)
            participants.to_csv(cohort["participants"], sep="\t", index=False)
        proc = run_snakemake(cfg, root)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        runs[name] = sorted(finished_jobs(proc.stdout + proc.stderr))
    runs["untouched"] = before == output_mtimes(root / "batch", sorted(set(participants["participant_id"]) - set(NEW)))
    ref = run_snakemake(write_config(root / "scan.yaml", cohort, root / "scan", **settings), root)
    assert ref.returncode == 0, (ref.stdout + ref.stderr)[-4000:]
    runs.update(batch=root / "batch", scan=root / "scan")
    return runs


def test_batch_mode_plans_one_job_per_batch(batch_runs):
    rules = [r for r, _ in batch_runs["first"]]
    assert sorted(w for r, w in batch_runs["first"] if r == "reho_batch") == ["batch=00000", "batch=00001"]
    assert rules.count("cbf_batch") == 2
    assert not {"denoise", "reho", "parcellate_reho", "cbf", "parcellate_cbf"} & set(rules)


def test_batch_mode_outputs_equal_the_per_scan_mode(batch_runs):
    compared = assert_same_outputs(batch_runs["scan"], batch_runs["batch"])
    assert {"group/parcels_reho.tsv", "group/parcels_cbf.tsv", "group/qc.tsv"} <= compared
    assert sum(f.endswith("_desc-reho_bold.nii.gz") for f in compared) == 8
    assert not list(batch_runs["batch"].rglob("*_desc-denoised_bold.nii.gz"))  # temp, as per scan
    table = pd.read_csv(batch_runs["batch"] / "group" / "parcels_reho.tsv", sep="\t")
    assert len(table) == 7 and BAD not in set(table["participant_id"])  # the bad subject: not in the table


def test_a_bad_subject_fails_alone_inside_its_batch(batch_runs):
    record = pd.read_csv(batch_runs["batch"] / "work" / "batches" / "reho" / "batch-00000.tsv", sep="\t",
                         keep_default_na=False)
    assert len(record) == 4
    bad = record.set_index("participant_id").loc[BAD]
    assert bad["status"] == "failed" and "4-D" in bad["reason"] and BAD in bad["reason"]
    assert set(record.loc[record["participant_id"] != BAD, "status"]) == {"ok"}
    qc = pd.read_csv(batch_runs["batch"] / "group" / "qc.tsv", sep="\t", keep_default_na=False)
    rows = qc[(qc["participant_id"] == BAD) & (qc["status"] == "failed")]
    assert not rows.empty and rows["reason"].str.contains("4-D").all()


def test_new_subjects_run_only_a_new_batch(batch_runs):
    per_batch = [(r, w) for r, w in batch_runs["added"] if r.endswith("_batch")]
    assert per_batch == [("cbf_batch", "batch=00002"), ("reho_batch", "batch=00002")]
    assert {"collect_reho", "collect_cbf", "effect_sizes", "qc_table"} <= {r for r, _ in batch_runs["added"]}
    assert batch_runs["untouched"], "files of subjects already done were rewritten"
    record = pd.read_csv(batch_runs["batch"] / "work" / "batches" / "reho" / "batch-00002.tsv", sep="\t")
    assert list(record["participant_id"]) == list(NEW) and set(record["status"]) == {"ok"}
