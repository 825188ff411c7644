"""Cohort-statistics steps on files: bad input gives one clear message and writes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rviflow.cohort.stats import CohortSpec, run_effect_summaries, run_harmonize, run_rvi, score_new_subjects
from rviflow.errors import InputError


def _write(tmp_path, n=36, seed=0, n_regions=12):
    rng = np.random.default_rng(seed)
    p = pd.DataFrame(dict(participant_id=[f"sub-{i:03d}" for i in range(n)],
                          diagnosis=np.where(np.arange(n) % 2 == 0, "MDD", "HC"), age=rng.uniform(20, 60, n).round(1),
                          sex=rng.choice(["F", "M"], n), site=np.array(["s1", "s2", "s3"])[(np.arange(n) // 2) % 3]))
    p["hamd"] = np.where(p["diagnosis"] == "MDD", rng.integers(10, 30, n), 2)
    case = (p["diagnosis"] == "MDD").to_numpy()
    tabs = {}
    for m, d in (("reho", -0.8), ("thickness", -0.3)):
        y = rng.normal(size=(n, n_regions)) + np.array([0, 0.5, -0.5])[(np.arange(n) // 2) % 3][:, None]
        y[case, : n_regions // 2] += d
        t = pd.DataFrame(y, columns=[f"{'LR'[j % 2]}_r{j // 2}" for j in range(n_regions)])
        t.insert(0, "session", "")
        t.insert(0, "participant_id", p["participant_id"])
        tabs[m] = t
    return p, tabs


def _save(tmp_path, p, tabs):
    p.to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    paths = []
    for m, t in tabs.items():
        t.to_csv(tmp_path / f"parcels_{m}.tsv", sep="\t", index=False)
        paths.append(str(tmp_path / f"parcels_{m}.tsv"))
    return CohortSpec(str(tmp_path / "participants.tsv"), symptoms=["hamd"]), paths


def _rvi(tmp_path, spec, paths):
    o = tmp_path / "out"
    run_rvi(paths, ["reho", "thickness"], spec, 3, 0, False, {}, None, o / "rvi.tsv", o / "rvi_summary.tsv",
            o / "rvi_symptoms.tsv", [o / "ep_reho.tsv", o / "ep_thickness.tsv"],
            [o / "ref_reho.pkl", o / "ref_thickness.pkl"], n_boot=200)
    return o


def test_rvi_step_writes_every_table_and_a_reusable_reference(tmp_path):
    p, tabs = _write(tmp_path)
    spec, paths = _save(tmp_path, p, tabs)
    o = _rvi(tmp_path, spec, paths)
    rvi = pd.read_csv(o / "rvi.tsv", sep="\t")
    assert list(rvi.columns[:5]) == ["participant_id", "measure", "rvi", "avi", "fold"] and len(rvi) == 72
    summ = pd.read_csv(o / "rvi_summary.tsv", sep="\t")
    assert {"auc_rvi", "auc_best_region", "d_rvi", "auc_rvi_difference"} <= set(summ["statistic"])
    sym = pd.read_csv(o / "rvi_symptoms.tsv", sep="\t")
    assert set(sym["measure"]) == {"reho", "thickness", "reho-thickness"} and (sym["n"] == 18).all()
    ep = pd.read_csv(o / "ep_reho.tsv", sep="\t")
    assert list(ep.columns[:2]) == ["region", "d"] and len(ep) == 12
    # discovery -> replication: the written EP is the external EP of another run
    o2 = tmp_path / "out2"
    run_rvi(paths[:1], ["reho"], spec, 3, 0, False, {"reho": str(o / "ep_reho.tsv")}, None, o2 / "rvi.tsv",
            o2 / "s.tsv", o2 / "y.tsv", [o2 / "ep.tsv"], [o2 / "ref.pkl"], n_boot=200)
    assert (pd.read_csv(o2 / "rvi.tsv", sep="\t")["fold"] == 0).all()
    scored = score_new_subjects(str(o / "ref_reho.pkl"), paths[0], str(tmp_path / "participants.tsv"),
                                str(tmp_path / "scored.tsv"))
    assert len(scored) == 36 and scored["rvi"].notna().all()


def _outputs(tmp_path):
    return [f for f in tmp_path.rglob("*") if f.is_file() and f.parent.name.startswith("out")]


@pytest.mark.parametrize("case", ["label", "covariate", "constant", "few"])
def test_bad_input_clear_message_nothing_written(tmp_path, case):
    p, tabs = _write(tmp_path)
    if case == "label":
        p.loc[5, "diagnosis"] = "bipolar"
        msg = "sub-005: diagnosis = 'bipolar' is neither the case label 'MDD' nor the control label 'HC'"
    elif case == "covariate":
        p.loc[7, "age"] = np.nan
        msg = "sub-007: covariate 'age' is missing"
    elif case == "constant":
        tabs["thickness"]["R_r3"] = 2.5
        msg = "thickness R_r3: the region has the same value in every subject"
    else:
        p = p[(p["diagnosis"] == "HC") | (p.index < 4)]
        for m in tabs:
            tabs[m] = tabs[m][tabs[m]["participant_id"].isin(p["participant_id"])]
        msg = "2 cases and 18 controls with data; at least 3 of each are needed"
    spec, paths = _save(tmp_path, p, tabs)
    with pytest.raises(InputError, match=msg.replace("(", r"\(")):
        _rvi(tmp_path, spec, paths)
    with pytest.raises(InputError):
        run_effect_summaries(paths, ["reho", "thickness"], spec, ["reho"], ["thickness"], 100, 0,
                             tmp_path / "out" / "hemi.tsv", tmp_path / "out" / "ratio.tsv")
    assert _outputs(tmp_path) == []


def test_small_site_for_combat(tmp_path):
    p, tabs = _write(tmp_path)
    p.loc[[0, 1], "site"] = "s9"
    spec, paths = _save(tmp_path, p, tabs)
    with pytest.raises(InputError, match="site 's9' has 2 subject.*ComBat needs at least 3 per site.*cohort.harmonize"):
        run_harmonize(paths[0], "reho", spec, 3, tmp_path / "out" / "h.tsv", tmp_path / "out" / "m.pkl")
    assert _outputs(tmp_path) == []


@pytest.mark.parametrize("case", ["no_id", "non_numeric", "no_match"])
def test_user_table_bad_input_clear_message_nothing_written(tmp_path, case):
    from rviflow.cohort.stats import run_import_table

    p, tabs = _write(tmp_path, n=12)
    t = tabs["reho"].drop(columns="session")
    if case == "no_id":
        t = t.rename(columns={"participant_id": "subject"})
        msg = "gmv.tsv: gmv table has no participant_id column"
    elif case == "non_numeric":
        t["L_r1"] = t["L_r1"].round(3).astype(str)
        t.loc[2, "L_r1"] = "big"
        msg = "gmv.tsv: sub-002: gmv region 'L_r1' has a non-numeric value 'big'"
    else:
        t["participant_id"] = t["participant_id"].str.replace("sub-", "sub-x")
        msg = "none of the 12 participant_id values of gmv.tsv is in participants.tsv (e.g. 'sub-x000'"
    p.to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    t.to_csv(tmp_path / "gmv.tsv", sep="\t", index=False)
    o = tmp_path / "out"
    with pytest.raises(InputError, match=msg.replace("(", r"\(")):
        run_import_table(str(tmp_path / "gmv.tsv"), "gmv", str(tmp_path / "participants.tsv"), o / "t.tsv",
                         o / "q.tsv")
    assert _outputs(tmp_path) == []


def test_user_table_rows_are_matched_to_participants(tmp_path, capsys):
    """A row without a participants.tsv row is left out (QC failed, one line on stderr); a
    participant without a row gets a failed QC row; IDs without sub- get it."""
    from rviflow.cohort.stats import run_import_table

    p, tabs = _write(tmp_path, n=12)
    t = tabs["reho"].drop(columns="session")
    t = pd.concat([t[t["participant_id"] != "sub-011"], t.head(1).assign(participant_id="sub-777")])
    t["participant_id"] = t["participant_id"].str.removeprefix("sub-")
    p.to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    t.to_csv(tmp_path / "gmv.csv", index=False)
    o = tmp_path / "out"
    run_import_table(str(tmp_path / "gmv.csv"), "gmv", str(tmp_path / "participants.tsv"), o / "t.tsv", o / "q.tsv")
    table = pd.read_csv(o / "t.tsv", sep="\t")
    assert len(table) == 11 and "sub-777" not in set(table["participant_id"])
    assert table["participant_id"][0] == "sub-000"  # the sub- prefix added
    qc = pd.read_csv(o / "q.tsv", sep="\t").set_index("participant_id")
    assert (qc["status"] == "ok").sum() == 11 and qc.loc["sub-011", "reason"] == "no row in gmv.csv"
    assert qc.loc["sub-777", "status"] == "failed"
    assert capsys.readouterr().err.strip() == ("rviflow: sub-777: has data in gmv.csv but no row in participants.tsv "
                                               "(left out) (see group/qc.tsv)")


def test_frozen_harmonised_reference_scores_new_subjects_without_their_label(tmp_path):
    """With ComBat, the saved reference's model is fitted without the diagnosis (as in the RVI
    folds), so a new subject's RVI cannot depend on its own case/control label: scoring the same
    new subjects with their labels flipped gives identical RVIs."""
    p, tabs = _write(tmp_path)
    spec, paths = _save(tmp_path, p, tabs)
    measures = ["reho", "thickness"]
    harmonised = [str(tmp_path / f"harmonized_{m}.tsv") for m in measures]
    models = [str(tmp_path / f"combat_{m}.pkl") for m in measures]
    for m, raw, h, model in zip(measures, paths, harmonised, models):
        run_harmonize(raw, m, spec, 2, h, model)
    o = tmp_path / "out"
    run_rvi(harmonised, measures, spec, 3, 0, False, {}, models, o / "rvi.tsv", o / "s.tsv", o / "y.tsv",
            [o / f"ep_{m}.tsv" for m in measures], [o / f"ref_{m}.pkl" for m in measures], n_boot=100,
            raw_tables=paths, min_per_site=2)
    # six "new" subjects: the first six rows under new IDs, once with their labels, once flipped
    new_ids = {f"sub-{i:03d}": f"sub-{100 + i:03d}" for i in range(6)}
    table = tabs["reho"].head(6).replace({"participant_id": new_ids})
    table.to_csv(tmp_path / "new.tsv", sep="\t", index=False)
    scores = []
    for flip in (False, True):
        new = p.head(6).replace({"participant_id": new_ids})
        if flip:
            new["diagnosis"] = new["diagnosis"].map({"MDD": "HC", "HC": "MDD"})
        new.to_csv(tmp_path / f"participants_{flip}.tsv", sep="\t", index=False)
        scores.append(score_new_subjects(str(o / "ref_reho.pkl"), str(tmp_path / "new.tsv"),
                                         str(tmp_path / f"participants_{flip}.tsv"), str(tmp_path / f"s_{flip}.tsv")))
    assert scores[0]["rvi"].notna().all() and len(scores[0]) == 6
    np.testing.assert_allclose(scores[0]["rvi"], scores[1]["rvi"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(scores[0]["avi"], scores[1]["avi"], rtol=0, atol=1e-12)


def test_rvi_step_with_label_permutations(tmp_path):
    """cohort.rvi.n_perm: the AUC / d rows take the permutation p (p_parametric keeps DeLong's /
    the t test's), the paired differences a DeLong p with an inflated variance (>= DeLong's)."""
    p, tabs = _write(tmp_path)
    spec, paths = _save(tmp_path, p, tabs)
    o = tmp_path / "out"
    run_rvi(paths, ["reho", "thickness"], spec, 3, 0, False, {}, None, o / "rvi.tsv", o / "rvi_summary.tsv",
            o / "rvi_symptoms.tsv", [o / "ep_reho.tsv", o / "ep_thickness.tsv"],
            [o / "ref_reho.pkl", o / "ref_thickness.pkl"], n_boot=100, n_perm=50)
    summ = pd.read_csv(o / "rvi_summary.tsv", sep="\t").set_index(["measure", "statistic"])
    for stat in ("auc_rvi", "auc_best_region", "d_rvi"):
        row = summ.loc[("reho", stat)]
        assert row["n_perm"] == 50 and row["p"] >= 1 / 51 and "label permutations" in row["note"]
        assert abs(row["p"] * 51 - round(row["p"] * 51)) < 1e-6 or row["p"] == 1   # a permutation p: k / 51
    for key in (("reho", "auc_rvi_minus_best_region"), ("reho-thickness", "auc_rvi_difference")):
        assert summ.loc[key, "p"] >= summ.loc[key, "p_parametric"] - 1e-12 and summ.loc[key, "n_perm"] == 50
