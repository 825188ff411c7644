"""Incremental reruns, with real snakemake runs: what re-runs after new subjects arrive, after a
covariate is edited, after a ReHo parameter changes. The jobs that ran are read from each run's
log (the "rule X:" job blocks and their "Finished jobid" lines), not derived from the rules.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import JOB_BLOCK, MACHINERY_CONFIG, jobs_that_ran, output_mtimes, run_snakemake, write_config

pytestmark = pytest.mark.workflow
NEW = ("sub-007", "sub-008")


def _per_subject(ran):
    return {(r, s) for r, s in ran if s}


def _cohort(ran):
    return {r for r, s in ran if not s and r != "all"}


LOGS: dict[str, str] = {}


def _run(cfg: Path, work: Path, name: str) -> set[tuple[str, str]]:
    proc = run_snakemake(cfg, work)
    assert proc.returncode == 0, proc.stderr[-4000:]
    LOGS[name] = proc.stdout + proc.stderr
    return jobs_that_ran(LOGS[name])


@pytest.fixture(scope="module")
def rerun_history(tmp_path_factory):
    """One output tree, five runs: 6 subjects; + sub-007/008; a covariate edited; ReHo 27 -> 19
    with keep_denoised switched on (the default temp denoised BOLD is gone, so denoise re-runs
    once); ReHo 19 -> 7 (the denoised BOLD is kept now: denoise does not re-run)."""
    from rviflow.synth.cohort import write_cohort

    root = tmp_path_factory.mktemp("reruns")
    cohort = write_cohort(root / "cohort", n_subjects=8, seed=21, n_sites=2, asl=False)
    participants = pd.read_csv(cohort["participants"], sep="\t", dtype={"participant_id": str})
    held = root / "held"
    for sub in NEW:  # not there yet: data and participants rows arrive later
        shutil.move(cohort["fmriprep"] / sub, held / sub)
    participants[~participants["participant_id"].isin(NEW)].to_csv(cohort["participants"], sep="\t", index=False)
    out = root / "out"
    cfg = write_config(root / "config.yaml", cohort, out, **MACHINERY_CONFIG)
    history = {"first": _run(cfg, root, "first")}
    old = sorted({s for _, s in _per_subject(history["first"])})
    history["denoised_after_first"] = sorted(out.glob("sub-*/func/*_desc-denoised_bold.nii*"))

    before = output_mtimes(out, old)
    for sub in NEW:
        shutil.move(held / sub, cohort["fmriprep"] / sub)
    participants.to_csv(cohort["participants"], sep="\t", index=False)
    history["added"] = _run(cfg, root, "added")
    history["untouched"] = before == output_mtimes(out, old)

    edited = participants.copy()
    edited.loc[edited["participant_id"] == "sub-001", "age"] += 7
    edited.to_csv(cohort["participants"], sep="\t", index=False)
    history["covariate"] = _run(cfg, root, "covariate")

    data = yaml.safe_load(cfg.read_text())
    data["reho"] = {"neighbourhood": 19}
    data["denoise"] = {"keep_denoised": True}
    cfg.write_text(yaml.safe_dump(data))
    history["reho_temp"] = _run(cfg, root, "reho_temp")

    data["reho"] = {"neighbourhood": 7}
    cfg.write_text(yaml.safe_dump(data))
    history["reho"] = _run(cfg, root, "reho")
    history.update(old=old, out=out, cohort=cohort)
    return history


def test_first_run_runs_every_job(rerun_history):
    first = rerun_history["first"]
    subjects = {s for _, s in _per_subject(first)}
    assert len(subjects) == 6 and not subjects & set(NEW)
    assert {r for r, _ in _per_subject(first)} == {"reho_scan"}  # per scan: one job, denoise -> ReHo -> parcels
    assert {"collect_reho", "effect_sizes", "qc_table"} <= _cohort(first)


def test_new_subjects_run_only_their_jobs_and_the_cohort_rules(rerun_history):
    first, added = rerun_history["first"], rerun_history["added"]
    per_subject_rules = {r for r, _ in _per_subject(first)}
    assert _per_subject(added) == {(r, s) for r in per_subject_rules for s in NEW}
    assert {"collect_reho", "effect_sizes", "qc_table"} <= _cohort(added)
    assert rerun_history["untouched"], "files of subjects already done were rewritten"
    parcels = pd.read_csv(rerun_history["out"] / "group" / "parcels_reho.tsv", sep="\t")
    assert len(parcels) == 8


def test_covariate_edit_reruns_only_cohort_rules(rerun_history):
    ran = rerun_history["covariate"]
    assert not _per_subject(ran), sorted(_per_subject(ran))
    assert "effect_sizes" in _cohort(ran)
    assert "collect_reho" not in _cohort(ran)  # the parcel table does not depend on participants.tsv


def test_reho_parameter_reruns_reho_and_downstream_not_denoise(rerun_history):
    ran = rerun_history["reho"]
    subjects = set(rerun_history["old"]) | set(NEW)
    assert _per_subject(ran) == {(r, s) for r in ("reho", "parcellate_reho") for s in subjects}
    assert {"collect_reho", "effect_sizes", "qc_table"} <= _cohort(ran)
    side = next((rerun_history["out"] / "sub-001" / "func").glob("*_desc-reho_bold.json")).read_text()
    assert '"neighbourhood": 7' in side


def test_reho_parameter_with_temp_denoised_bold(rerun_history):
    """Default (keep_denoised: false): the per-scan chain job (reho_scan) holds the denoised BOLD in
    memory and never writes it, so the first ReHo parameter change with keep_denoised switched on
    must create it: the separate denoise job runs, because its output is missing."""
    assert rerun_history["denoised_after_first"] == []  # temp: gone after the first run
    ran = rerun_history["reho_temp"]
    subjects = set(rerun_history["old"]) | set(NEW)
    assert _per_subject(ran) == {(r, s) for r in ("denoise", "reho", "parcellate_reho") for s in subjects}
    reasons = [m.group(2) for m in JOB_BLOCK.finditer(LOGS["reho_temp"]) if m.group(1) == "denoise"]
    assert len(reasons) == len(subjects)
    assert all(re.search(r"reason: Missing output files: \S+_desc-denoised_bold\.nii\b", r) for r in reasons), \
        reasons[0]


def test_resources_scale_with_bold_size(rerun_history):
    """The first run's log shows each per-scan chain job's mem_mb: 1,500 MB + 12 x its BOLD's MB
    (workflow/rules/common.smk), i.e. computed per job from the input size."""
    seen = {}
    for m in JOB_BLOCK.finditer(LOGS["first"]):
        if m.group(1) == "reho_scan":
            sub = re.search(r"wildcards: scan=(sub-[a-zA-Z0-9]+)", m.group(2)).group(1)
            seen[sub] = int(re.search(r"mem_mb=(\d+)", m.group(2)).group(1))
    assert len(seen) == 6
    for sub, mem in seen.items():
        bold = next((rerun_history["cohort"]["fmriprep"] / sub / "func").glob("*_desc-preproc_bold.nii.gz"))
        assert mem == int(1500 + 12 * bold.stat().st_size / 2**20), (sub, mem)
