"""The longitudinal design on images (rviflow.synth.longitudinal: ses-pre / ses-post, BIDS
sessions.tsv): both sessions' per-scan jobs run, the case-control tables use the baseline, the
change is computed; a follow-up arriving later runs only its own per-scan jobs plus the cohort
rules (no other scan is redone)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from conftest import MACHINERY_CONFIG, jobs_that_ran, output_mtimes, run_snakemake, write_config

pytestmark = pytest.mark.workflow
LATE = "sub-002"  # a patient whose follow-up arrives for the second run


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from rviflow.synth.longitudinal import write_longitudinal_cohort

    root = tmp_path_factory.mktemp("longitudinal_images")
    cohort = write_longitudinal_cohort(root / "cohort", n_subjects=8, seed=5, n_sites=2, n_timepoints=60)
    assert (cohort["fmriprep"] / LATE / "ses-post").is_dir()
    held = root / "held"
    held.mkdir()
    shutil.move(cohort["fmriprep"] / LATE / "ses-post", held / "ses-post")
    out = root / "out"
    cfg = write_config(root / "config.yaml", cohort, out, **MACHINERY_CONFIG,
                       design={"type": "longitudinal", "baseline": "pre", "followup": "post",
                               "prediction": {"enabled": False}})
    first = run_snakemake(cfg, root)
    scans_first = pd.read_csv(out / "group" / "parcels_reho_scans.tsv", sep="\t", dtype=str)
    qc_first = pd.read_csv(out / "group" / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    subjects = sorted(p.name for p in out.glob("sub-*"))
    before = output_mtimes(out, subjects)
    shutil.move(held / "ses-post", cohort["fmriprep"] / LATE / "ses-post")
    second = run_snakemake(cfg, root)
    after = output_mtimes(out, subjects)  # LATE's new ses-post files are new keys, not rewrites
    return dict(first=first, second=second, out=out, cohort=cohort, scans_first=scans_first, qc_first=qc_first,
                untouched=all(after.get(k) == v for k, v in before.items()))


def test_both_sessions_processed_baseline_for_case_control(two_runs):
    first, out = two_runs["first"], two_runs["out"]
    assert first.returncode == 0, first.stderr[-3000:]
    scans = two_runs["scans_first"]
    sessions = scans.groupby("participant_id")["session"].apply(set)
    assert sessions.loc["sub-001"] == {"pre", "post"} and sessions.loc[LATE] == {"pre"}
    parcels = pd.read_csv(out / "group" / "parcels_reho.tsv", sep="\t", dtype=str)
    assert set(parcels["session"]) == {"pre"} and len(parcels) == 8
    qc = two_runs["qc_first"]
    late = qc[(qc["participant_id"] == LATE) & (qc["step"] == "session")]
    assert "baseline only" in late["reason"].iloc[0]
    change = pd.read_csv(out / "group" / "change.tsv", sep="\t")
    assert set(change["group"]) >= {"MDD"} and change["p"].notna().all()


def test_a_late_follow_up_runs_only_its_jobs_and_the_cohort_rules(two_runs):
    second = two_runs["second"]
    assert second.returncode == 0, second.stderr[-3000:]
    ran = jobs_that_ran(second.stderr)
    per_scan = {(r, s) for r, s in ran if s}
    assert per_scan == {("reho_scan", LATE)}, sorted(per_scan)
    assert {"collect_reho", "change", "qc_table"} <= {r for r, s in ran if not s}
    assert two_runs["untouched"], "files of scans already done were rewritten"
    scans = pd.read_csv(two_runs["out"] / "group" / "parcels_reho_scans.tsv", sep="\t", dtype=str)
    assert set(scans.loc[scans["participant_id"] == LATE, "session"]) == {"pre", "post"}
