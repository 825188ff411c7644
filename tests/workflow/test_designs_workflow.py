"""The designs in real snakemake runs: a tables-only pre / post cohort as `rviflow demo --design
longitudinal --tables-only` configures it (planted change, change-symptom coupling, baseline
predictor, biomarker association; patients without follow-up, controls scanned twice), with bad
session input added; each planted effect recovered, nothing found elsewhere; every bad input one
line naming subject, session and file, in qc.tsv, excluded from the affected analysis only."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from conftest import run_snakemake
from rviflow.cli import longitudinal_demo_config
from rviflow.synth.longitudinal import write_longitudinal_tables

pytestmark = pytest.mark.workflow
N = 72


@pytest.fixture(scope="module")
def longitudinal_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("longitudinal")
    cohort = write_longitudinal_tables(root / "data", n_subjects=N, seed=2)
    reho = pd.read_csv(cohort["tables"]["reho"], sep="\t")
    # bad input: sub-900 has a follow-up but no baseline; sub-001 has a ses-mid; sub-002's baseline score is text;
    # sub-004 has data but no sessions row at follow-up; sub-950 has a sessions row but no data
    extra = [reho[(reho["participant_id"] == "sub-005") & (reho["session"] == "pre")].assign(participant_id="sub-900", session="post"),
             reho[(reho["participant_id"] == "sub-001") & (reho["session"] == "pre")].assign(session="mid")]
    pd.concat([reho, *extra]).to_csv(cohort["tables"]["reho"], sep="\t", index=False)
    parts = pd.read_csv(cohort["participants"], sep="\t")
    pd.concat([parts, parts.iloc[[4]].assign(participant_id="sub-900")]).to_csv(cohort["participants"], sep="\t",
                                                                                 index=False)
    ses = pd.read_csv(cohort["sessions"], sep="\t", dtype=str)
    ses.loc[(ses["participant_id"] == "sub-002") & (ses["session"] == "pre"), "hamd"] = "severe"
    ses = ses[~((ses["participant_id"] == "sub-004") & (ses["session"] == "post"))]
    ses = pd.concat([ses, pd.DataFrame([dict(participant_id="sub-950", session="pre", hamd="20")])])
    ses.to_csv(cohort["sessions"], sep="\t", index=False)
    cfg = longitudinal_demo_config(cohort, root, tables_only=True)
    cfg["design"]["prediction"] = dict(models=["ridge"], n_perm=200)
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(root / "config.yaml", root)
    return proc, root / "derivatives" / "rviflow", cohort


def _truth(cohort):
    return pd.read_csv(cohort["truth"] / "longitudinal.tsv", sep="\t")


def test_planted_change_recovered_and_nothing_else(longitudinal_run):
    proc, out, cohort = longitudinal_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    ch = pd.read_csv(out / "group" / "change.tsv", sep="\t").merge(_truth(cohort), on="region")
    mdd = ch[ch["group"] == "MDD"]
    planted = mdd["planted_change_dz"] > 0
    assert (mdd.loc[planted, "q_fdr"] < 0.05).all() and (mdd.loc[planted, "change"] > 0).all()
    assert (mdd.loc[~planted, "q_fdr"] < 0.05).sum() <= 2
    assert set(ch["group"]) >= {"MDD", "HC"}  # controls scanned twice have their own rows
    # subjects with both sessions only: sub-900 (no baseline) and baseline-only patients are out
    n_both = mdd["n"].iloc[0]
    assert 30 <= n_both < 48


def test_planted_coupling_and_association_recovered(longitudinal_run):
    proc, out, cohort = longitudinal_run
    truth = _truth(cohort)
    ca = pd.read_csv(out / "group" / "change_associations.tsv", sep="\t").merge(truth, on="region")
    assert set(ca["symptom"]) == {"delta_hamd"}
    hit = ca["q_fdr"] < 0.05
    assert (hit & ca["planted_coupling"]).sum() >= 2 and (hit & ~ca["planted_coupling"]).sum() <= 2
    # the coupling: a larger symptom drop (negative delta) goes with a larger increase
    assert (ca.loc[ca["planted_coupling"], "r_partial"] < 0).all()
    assoc = pd.read_csv(out / "group" / "associations.tsv", sep="\t").merge(truth, on="region")
    assert set(assoc["variable"]) == {"crp"} and set(assoc["group"]) == {"all"}
    hit = assoc["q_fdr"] < 0.05
    assert (hit & assoc["planted_crp"]).sum() >= 3 and (hit & ~assoc["planted_crp"]).sum() <= 2


def test_response_prediction_finds_the_planted_predictor(longitudinal_run):
    proc, out, cohort = longitudinal_run
    rp = pd.read_csv(out / "group" / "response_prediction.tsv", sep="\t")
    row = rp[(rp["features"] == "reho") & (rp["model"] == "ridge")].iloc[0]
    assert row["r"] > 0.3 and row["p_perm"] < 0.05 and row["n_perm"] == 200 and row["response"] == "percent"


def test_bad_session_input_one_line_each_and_in_qc(longitudinal_run):
    proc, out, cohort = longitudinal_run
    err = proc.stderr
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    bad = qc[qc["status"] == "failed"].set_index(["participant_id", "session"])["reason"]
    expect = {("sub-900", "post"): "without ses-pre", ("sub-001", "mid"): "ses-mid is neither",
              ("sub-002", "pre"): "'severe' is not a number", ("sub-004", "post"): "no row for ses-post",
              ("sub-950", "pre"): "no ses-pre data"}
    for (pid, ses), what in expect.items():
        reasons = " | ".join(bad.loc[[(pid, ses)]])
        assert what in reasons, (pid, ses, reasons)
        line = next(x for x in err.splitlines() if x.startswith(f"rviflow: {pid}:") and what in x)
        assert ("reho.tsv" in line) or ("sessions.tsv" in line), line  # the file is named
    ok = qc[(qc["step"] == "session") & (qc["status"] == "ok")]
    assert ok["reason"].str.contains("baseline only").any()
    # excluded from the affected analysis only: sub-002 (bad baseline score) keeps its change row count
    ch = pd.read_csv(out / "group" / "change.tsv", sep="\t")
    eff = pd.read_csv(out / "group" / "effect_sizes.tsv", sep="\t")
    assert eff["n_case"].iloc[0] + eff["n_control"].iloc[0] == N  # sub-900 has no baseline: not in it
    ca = pd.read_csv(out / "group" / "change_associations.tsv", sep="\t")
    assert ca["n"].iloc[0] == ch[ch["group"] == "MDD"]["n"].iloc[0] - 2  # sub-002 and sub-004 lack a symptom change


def test_report_shows_the_designs_and_their_methods(longitudinal_run):
    import re

    proc, out, cohort = longitudinal_run
    html = (out / "report" / "rviflow_report.html").read_text()
    status = dict(re.findall(r'<section id="([a-z-]+)" data-status="([a-z]+)"', html))
    assert status["longitudinal"] == "ok" and status["associations"] == "ok", status
    assert "error" not in status.values(), status
    body = html[html.index('id="longitudinal"'):html.index('id="transcriptomics"')]
    assert body.count("data:image/png;base64,") >= 4  # change map + forest, coupling map, association map
    methods = html[html.index('id="methods"'):]
    assert "paired t test" in methods and "permutations of the response within site" in methods
    assert "Region-level associations of each measure with crp" in methods
