"""Cohort-scale DAG building (benchmarks/bench_dag.py has the timings): discovery lists each
directory once, and planning a run reads no image (0-byte placeholder images would not load)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_dag import SPACE, make_cohort  # noqa: E402


def test_discovery_lists_each_directory_once(tmp_path, monkeypatch):
    from rviflow.io import bids as bids_io

    _, fmriprep = make_cohort(tmp_path, 40, asl=True)
    ses = fmriprep / "sub-00003" / "ses-2" / "func"  # a session-level run too
    ses.mkdir(parents=True)
    for suffix in ("space-%s_desc-preproc_bold.nii.gz" % SPACE, "space-%s_desc-brain_mask.nii.gz" % SPACE,
                   "desc-confounds_timeseries.tsv"):
        (ses / f"sub-00003_ses-2_task-rest_{suffix}").touch()
    (fmriprep / "sub-00007" / "func" / f"sub-00007_task-rest_space-{SPACE}_desc-brain_mask.nii.gz").unlink()
    listed = Counter()
    real_scandir, real_listdir = os.scandir, os.listdir
    monkeypatch.setattr(os, "scandir", lambda p=".": listed.update([os.fspath(p)]) or real_scandir(p))
    monkeypatch.setattr(os, "listdir", lambda p=".": listed.update([os.fspath(p)]) or real_listdir(p))
    scans, problems = bids_io.discover_scans(fmriprep, "rest", SPACE)
    monkeypatch.undo()
    assert len(scans) == 40 and [p["participant_id"] for p in problems] == ["sub-00007"]
    assert "brain mask missing" in problems[0]["reason"]
    assert any(s.session == "2" for s in scans)
    assert [s.key for s in scans] == sorted(s.key for s in scans)
    assert max(listed.values()) == 1, listed.most_common(3)
    assert len(listed) <= 1 + 2 * 40 + 2  # root, each sub-*, each func (+ the session's two)


def test_dry_run_on_empty_placeholder_files(tmp_path):
    """0-byte BOLD / mask / ASL files: any image read while the DAG is built would fail."""
    bids, fmriprep = make_cohort(tmp_path, 30, asl=True)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"bids_dir: {bids}\nfmriprep_dir: {fmriprep}\noutput_dir: {tmp_path / 'out'}\n"
                   f"task: rest\nspace: {SPACE}\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile",
                           str(cfg), "--directory", str(tmp_path), "--dry-run", "--quiet", "rules", "--cores", "1"],
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", log.split("Job stats:")[1].split("\n\n")[0], re.M))
    assert int(stats["reho_scan"]) == 30 and not {"denoise", "reho", "parcellate_reho"} & set(stats)


def test_batch_mode_plans_one_job_per_batch_of_placeholders(tmp_path):
    """batch_size: 100 on 250 placeholder subjects: ceil(250 / 100) = 3 ReHo and 3 CBF batch jobs and
    no per-scan job; a second dry run after 30 more subjects arrive plans only their new batch."""
    bids, fmriprep = make_cohort(tmp_path, 250, asl=True)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"bids_dir: {bids}\nfmriprep_dir: {fmriprep}\noutput_dir: {tmp_path / 'out'}\n"
                   f"task: rest\nspace: {SPACE}\nbatch_size: 100\n")

    def planned():
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                               "--configfile", str(cfg), "--directory", str(tmp_path), "--dry-run", "--quiet", "rules",
                               "--cores", "1"], capture_output=True, text=True, timeout=600)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-3000:]
        return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", log.split("Job stats:")[1].split("\n\n")[0], re.M)}

    stats = planned()
    assert stats["reho_batch"] == stats["cbf_batch"] == 3
    assert not {"denoise", "reho", "parcellate_reho", "cbf", "parcellate_cbf"} & set(stats)
    manifest = (tmp_path / "out" / "work" / "batches_reho.tsv").read_text().splitlines()
    assert len(manifest) == 251 and manifest[1].startswith("sub-00001/func/sub-00001_task-rest\t00000")
    for n in range(1, 4):  # pretend the first three batches finished
        for chain in ("reho", "cbf"):
            record = tmp_path / "out" / "work" / "batches" / chain / f"batch-{n - 1:05d}.tsv"
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text("scan\tparticipant_id\tstatus\treason\n")
    make_cohort(tmp_path, 280, asl=True)
    stats = planned()
    assert stats["reho_batch"] == stats["cbf_batch"] == 1  # only batch 00003, the 30 new subjects
    assert (tmp_path / "out" / "work" / "batches_reho.tsv").read_text().splitlines()[-1].endswith("\t00003")
