"""rviflow.pipeline.runlock and how `rviflow run` finds the output_dir it locks (real runs, kills and a
second run on one output_dir: tests/pipeline/test_faults.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rviflow.cli import output_dir_of
from rviflow.pipeline.runlock import LOCK_NAME, RunLockError, hold, release, stale_snakemake_lock


def test_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    out = tmp_path / "out"
    fd = hold(out)
    with pytest.raises(RunLockError) as info:
        hold(out)  # a second open file: flock refuses it even in the same process
    assert str(info.value).startswith(f"another rviflow run (pid {os.getpid()}) is using output_dir {out}")
    assert "\n" not in str(info.value)
    release(fd, out, created=False)
    release(hold(out), out, created=False)  # free again once released
    assert (out / LOCK_NAME).exists()


def test_release_removes_an_output_dir_the_run_made_but_never_wrote(tmp_path):
    out = tmp_path / "new"
    release(hold(out), out, created=True)
    assert not out.exists()
    fd = hold(out)
    (out / "group").mkdir()
    release(fd, out, created=True)
    assert (out / "group").is_dir() and (out / LOCK_NAME).exists()


def test_stale_snakemake_lock_only_for_files_under_output_dir(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    locks = work / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    assert not stale_snakemake_lock(work, out)
    (locks / "0.input.lock").write_text(f"{out}/sub-01/x.nii.gz\n")  # inputs are never ours to clear
    (locks / "0.output.lock").write_text(f"{tmp_path}/other/x.tsv\n{tmp_path}/out2/y.tsv\n")
    assert not stale_snakemake_lock(work, out)
    (locks / "1.output.lock").write_text("../out/group/qc.tsv\n")  # relative to the working directory
    assert stale_snakemake_lock(work, out)


def test_output_dir_of_config_override_and_directory(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output_dir: derivatives/rviflow\ntask: rest\n")
    monkeypatch.chdir(tmp_path)
    assert output_dir_of(cfg, []) == tmp_path / "derivatives" / "rviflow"
    assert output_dir_of(cfg, ["--directory", "/data/run"]) == Path("/data/run/derivatives/rviflow")
    assert output_dir_of(cfg, ["--config", "task=x", "output_dir=/o", "--cores", "2"]) == Path("/o")
    cfg.write_text("task: rest\n")
    assert output_dir_of(cfg, []) is None  # the workflow's validation names the missing key
