"""The longitudinal design on images, at the size and with the config of `rviflow demo --design
longitudinal` (rviflow.synth.longitudinal: 24 subjects, ses-pre / ses-post, BIDS sessions.tsv;
transcriptomics and the SVR left out for time): both sessions' per-scan jobs run, the
case-control tables use the baseline, the change is computed; a follow-up arriving later runs only
its own per-scan jobs plus the cohort rules (no other scan is redone). On the complete cohort every
planted effect is recovered from the ReHo measured on the BOLD and nothing is found where nothing
was planted; the independent reference is the planted truth (truth/longitudinal.tsv), never the
pipeline's own output."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from conftest import jobs_that_ran, output_mtimes, run_snakemake

pytestmark = pytest.mark.workflow
LATE = "sub-002"  # a patient whose follow-up arrives for the second run
N = 24  # the demo's default (rviflow demo --subjects)
#: hits (q < 0.05) allowed outside the planted regions: a planted regional trait reaches its
#: neighbours' measured ReHo a little (the BOLD's spatially smooth shared signal, ReHo's 27 voxels)
MAX_UNPLANTED_HITS = 2


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from rviflow.cli import longitudinal_demo_config
    from rviflow.synth.longitudinal import write_longitudinal_cohort

    root = tmp_path_factory.mktemp("longitudinal_images")
    cohort = write_longitudinal_cohort(root / "cohort", n_subjects=N, seed=0)
    assert (cohort["fmriprep"] / LATE / "ses-post").is_dir()
    held = root / "held"
    held.mkdir()
    shutil.move(cohort["fmriprep"] / LATE / "ses-post", held / "ses-post")
    out = root / "out"
    cfg = longitudinal_demo_config(cohort, root)
    cfg["output_dir"] = str(out)
    cfg["transcriptomics"]["enabled"] = False
    cfg["cbf"] = {"enabled": "no"}
    cfg["design"]["prediction"] = dict(models=["ridge"], n_perm=200)
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    first = run_snakemake(root / "config.yaml", root)
    scans_first = pd.read_csv(out / "group" / "parcels_reho_scans.tsv", sep="\t", dtype=str)
    qc_first = pd.read_csv(out / "group" / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    subjects = sorted(p.name for p in out.glob("sub-*"))
    before = output_mtimes(out, subjects)
    shutil.move(held / "ses-post", cohort["fmriprep"] / LATE / "ses-post")
    second = run_snakemake(root / "config.yaml", root)
    after = output_mtimes(out, subjects)  # LATE's new ses-post files are new keys, not rewrites
    return dict(first=first, second=second, out=out, cohort=cohort, scans_first=scans_first, qc_first=qc_first,
                untouched=all(after.get(k) == v for k, v in before.items()))


def test_both_sessions_processed_baseline_for_case_control(two_runs):
    first, out = two_runs["first"], two_runs["out"]
    assert first.returncode == 0, first.stderr[-3000:]
    scans = two_runs["scans_first"]
    sessions = scans.groupby("participant_id")["session"].apply(set)
    assert sessions.loc["sub-001"] == {"pre", "post"} and sessions.loc[LATE] == {"pre"}
    qc = two_runs["qc_first"]
    late = qc[(qc["participant_id"] == LATE) & (qc["step"] == "session")]
    assert "baseline only" in late["reason"].iloc[0]


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
    parcels = pd.read_csv(two_runs["out"] / "group" / "parcels_reho.tsv", sep="\t", dtype=str)
    assert set(parcels["session"]) == {"pre"} and len(parcels) == N


def _group_table(two_runs, name):
    assert two_runs["second"].returncode == 0, two_runs["second"].stderr[-3000:]
    truth = pd.read_csv(two_runs["cohort"]["truth"] / "longitudinal.tsv", sep="\t").drop(columns="measure")
    return pd.read_csv(two_runs["out"] / "group" / name, sep="\t").merge(truth, on="region", validate="m:1")


def test_planted_change_recovered_from_the_images_and_nothing_else(two_runs):
    change = _group_table(two_runs, "change.tsv")
    mdd = change[change["group"] == "MDD"]
    planted = mdd["planted_change_dz"] > 0
    assert planted.sum() == 6
    assert (mdd.loc[planted, "q_fdr"] < 0.05).all() and (mdd.loc[planted, "change"] > 0).all(), \
        mdd.loc[planted, ["region", "change", "p", "q_fdr"]]
    assert (mdd.loc[~planted, "q_fdr"] < 0.05).sum() <= MAX_UNPLANTED_HITS
    # controls scanned twice: nothing planted, nothing found
    assert not (change.loc[change["group"] == "HC", "q_fdr"] < 0.05).any()


def test_planted_coupling_recovered_from_the_images_and_nothing_else(two_runs):
    ca = _group_table(two_runs, "change_associations.tsv")
    hit = ca["q_fdr"] < 0.05
    # a larger symptom drop (negative delta_hamd) goes with a larger increase: r < 0
    assert (hit & ca["planted_coupling"] & (ca["r_partial"] < 0)).sum() >= 3, ca[ca["planted_coupling"]]
    assert (hit & ~ca["planted_coupling"]).sum() <= MAX_UNPLANTED_HITS


def test_planted_crp_association_recovered_from_the_images_and_nothing_else(two_runs):
    assoc = _group_table(two_runs, "associations.tsv")
    assert set(assoc["variable"]) == {"crp"}
    hit = assoc["q_fdr"] < 0.05
    assert (hit & assoc["planted_crp"] & (assoc["r_partial"] > 0)).sum() >= 3, assoc[assoc["planted_crp"]]
    assert (hit & ~assoc["planted_crp"]).sum() <= MAX_UNPLANTED_HITS


def test_planted_baseline_predictor_recovered_from_the_images(two_runs):
    assert two_runs["second"].returncode == 0, two_runs["second"].stderr[-3000:]
    rp = pd.read_csv(two_runs["out"] / "group" / "response_prediction.tsv", sep="\t")
    row = rp[(rp["features"] == "reho") & (rp["model"] == "ridge")].iloc[0]
    assert row["r"] > 0.3 and row["p_perm"] < 0.05 and row["n_perm"] == 200, row
