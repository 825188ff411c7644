"""Unit tests of the designs' statistics (rviflow.cohort.longitudinal, rviflow.cohort.associations) against
independent references (statsmodels OLS per region, scipy's paired t test, scikit-learn's
RidgeCV pipeline), the sessions table checks (rviflow.io.sessions) and the longitudinal session
choice (rviflow.io.scans.longitudinal_sessions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from rviflow.cohort.associations import ASSOCIATION_COLUMNS, associations, partial_association
from rviflow.errors import InputError
from rviflow.cohort.longitudinal import (_ridge_oof, change_associations, paired_change, predict_response, response,
                                  ridge_reference)
from rviflow.io.scans import longitudinal_sessions
from rviflow.io.sessions import check_sessions, read_sessions


def _data(rng, n=30, m=6):
    pids = [f"sub-{i:02d}" for i in range(n)]
    parts = pd.DataFrame(dict(participant_id=pids, diagnosis=np.where(np.arange(n) % 3 == 2, "HC", "MDD"),
                              age=rng.uniform(20, 60, n), sex=rng.choice(["F", "M"], n),
                              site=[f"s{i % 2}" for i in range(n)], crp=rng.normal(size=n)))
    base = pd.DataFrame(rng.normal(size=(n, m)), index=pids, columns=[f"r{j}" for j in range(m)])
    follow = base + rng.normal(0.3, 1, (n, m))
    return parts, base, follow


def test_partial_association_equals_statsmodels_per_region_with_missing_values():
    rng = np.random.default_rng(0)
    n = 35
    Y = rng.normal(size=(n, 4))
    Y[[2, 5], 1] = np.nan
    Y[7, 3] = np.nan
    x = rng.normal(size=n)
    Z = np.c_[np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)]
    res = partial_association(Y, x, Z)
    for j in range(4):
        ok = np.isfinite(Y[:, j])
        fit = sm.OLS(Y[ok, j], np.c_[x[ok], Z[ok]]).fit()
        assert res.loc[j, "n"] == ok.sum()
        assert res.loc[j, "beta"] == pytest.approx(fit.params[0], abs=1e-10)
        assert res.loc[j, "se"] == pytest.approx(fit.bse[0], abs=1e-10)
        assert res.loc[j, "p"] == pytest.approx(fit.pvalues[0], abs=1e-10)
        # partial r from the t statistic: t / sqrt(t^2 + dof)
        t = fit.tvalues[0]
        assert res.loc[j, "r_partial"] == pytest.approx(t / np.sqrt(t**2 + fit.df_resid), abs=1e-10)
        assert res.loc[j, "ci_low"] < res.loc[j, "r_partial"] < res.loc[j, "ci_high"]


def test_associations_table_by_group_and_a_constant_variable_is_na():
    rng = np.random.default_rng(1)
    parts, base, _ = _data(rng)
    base["r0"] += 2 * parts.set_index("participant_id")["crp"]
    parts["flat"] = 1.0
    out = associations({"reho": base}, parts, ["crp", "flat"], {"MDD": ["MDD"], "all": ["MDD", "HC"]},
                       "diagnosis", ["age", "sex"], "site")
    assert list(out.columns) == ASSOCIATION_COLUMNS
    assert set(out["group"]) == {"MDD", "all"} and len(out) == 2 * 2 * 6
    crp = out[(out["variable"] == "crp") & (out["group"] == "all")].set_index("region")
    assert crp.loc["r0", "q_fdr"] < 0.001 and crp.loc["r0", "n"] == 30
    assert out[out["variable"] == "flat"]["p"].isna().all()


def test_paired_change_is_the_paired_t_test_and_the_difference_row_is_ols():
    rng = np.random.default_rng(2)
    parts, base, follow = _data(rng)
    follow = follow.drop(index=["sub-00", "sub-05"])  # baseline only
    out = paired_change(base, follow, parts, "reho", "diagnosis", {"case": "MDD", "control": "HC"},
                        ["age", "sex"], "site")
    mdd = out[out["group"] == "MDD"].set_index("region")
    who = [p for p in follow.index if parts.set_index("participant_id").loc[p, "diagnosis"] == "MDD"]
    for r in base.columns:
        d = follow.loc[who, r] - base.loc[who, r]
        t = stats.ttest_rel(follow.loc[who, r], base.loc[who, r])
        assert mdd.loc[r, "n"] == len(who)
        assert mdd.loc[r, "change"] == pytest.approx(d.mean())
        assert mdd.loc[r, "p"] == pytest.approx(t.pvalue)
        assert mdd.loc[r, "d_z"] == pytest.approx(d.mean() / d.std(ddof=1))
        half = stats.t.ppf(0.975, len(who) - 1) * d.std(ddof=1) / np.sqrt(len(who))
        assert mdd.loc[r, "ci_low"] == pytest.approx(d.mean() - half)
    diff = out[out["group"] == "MDD-HC"].set_index("region")
    p = parts.set_index("participant_id").loc[follow.index]
    X = pd.get_dummies(p[["age", "sex", "site"]], columns=["sex", "site"], drop_first=True, dtype=float)
    X.insert(0, "case", (p["diagnosis"] == "MDD").astype(float))
    fit = sm.OLS((follow["r3"] - base.loc[follow.index, "r3"]).to_numpy(), sm.add_constant(X).to_numpy(float)).fit()
    assert diff.loc["r3", "change"] == pytest.approx(fit.params[1])
    assert diff.loc["r3", "p"] == pytest.approx(fit.pvalues[1])


def test_change_associations_use_symptom_change_within_the_group():
    rng = np.random.default_rng(3)
    parts, base, follow = _data(rng, n=45)
    delta = pd.DataFrame({"hamd": rng.normal(size=45)}, index=base.index)
    follow["r2"] = base["r2"] - 1.5 * delta["hamd"] + rng.normal(0, 0.3, 45)
    out = change_associations(base, follow, delta, parts, "reho", "diagnosis", ["MDD"], ["age"], "site")
    assert set(out["symptom"]) == {"delta_hamd"} and set(out["group"]) == {"MDD"}
    row = out.set_index("region").loc["r2"]
    assert row["r_partial"] < -0.9 and row["q_fdr"] < 1e-6 and row["n"] == 30


def test_response_percent_and_absolute():
    b = pd.Series({"a": 20.0, "b": 0.0, "c": 10.0})
    f = pd.Series({"a": 10.0, "b": 2.0, "c": np.nan})
    assert response(b, f, "absolute").to_dict() == {"a": 10.0, "b": -2.0}
    assert response(b, f, "percent").to_dict() == {"a": 50.0}  # a baseline of 0 has no percent
    with pytest.raises(InputError):
        response(b, f, "ratio")


def test_fast_ridge_equals_scikit_learn_ridgecv_pipeline():
    """The vectorised ridge (all permutations at once) is scikit-learn's model, fold by fold, on
    the response adjusted for the covariates with the training fold's betas."""
    from sklearn.model_selection import KFold

    rng = np.random.default_rng(4)
    X = np.c_[rng.normal(size=(40, 25)), rng.normal(size=(40, 2))]  # 25 features + 2 covariates
    Y = np.c_[X[:, :3].sum(1) + X[:, -1] + rng.normal(size=40), rng.normal(size=40)]
    outer = list(KFold(5, shuffle=True, random_state=0).split(X))
    mine, target = _ridge_oof(X, Y, 2, outer)
    C = np.c_[np.ones(40), X[:, -2:]]
    for j in range(2):
        ref, ref_target = np.empty(40), np.empty(40)
        for tr, te in outer:
            beta = np.linalg.lstsq(C[tr], Y[tr, j], rcond=None)[0]
            ref[te] = ridge_reference(2).fit(X[tr], Y[tr, j] - C[tr] @ beta).predict(X[te])
            ref_target[te] = Y[te, j] - C[te] @ beta
        assert np.allclose(mine[:, j], ref, atol=1e-8) and np.allclose(target[:, j], ref_target)
    plain, same = _ridge_oof(X[:, :25], Y, 0, outer)
    assert np.array_equal(same, Y)


def test_predict_response_no_leakage_pure_noise_is_not_predicted():
    """With 500 noise features for 30 subjects any fit on all subjects would 'predict'; out of
    fold it must not, in 10 noise data sets (the calibration test measures the rate)."""
    rng = np.random.default_rng(5)
    ps = []
    for _ in range(10):
        X = pd.DataFrame(rng.normal(size=(30, 500)))
        res = predict_response(X, pd.Series(rng.normal(size=30)), n_perm=50)
        ps.append(res["p_perm"])
    assert res["n_features"] == 500
    assert sum(p < 0.05 for p in ps) <= 2 and np.median(ps) > 0.2
    with pytest.raises(InputError, match="at least"):
        predict_response(X.iloc[:6], pd.Series(np.zeros(6)), n_perm=0)


def test_read_and_check_sessions_flag_every_problem_naming_subject_session_file(tmp_path):
    for pid, rows in {"sub-01": "ses-pre\t20\nses-post\t10\n", "sub-02": "ses-pre\tabc\nses-post\t12\n",
                      "sub-03": "ses-pre\t25\nses-post\t9\n"}.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / f"{pid}_sessions.tsv").write_text("session_id\thamd\n" + rows)
    long = read_sessions(tmp_path, ["sub-01", "sub-02", "sub-03", "sub-04"])
    # sub-03 has no post data; sub-04 has data but no sessions.tsv
    available = {"sub-01": {"pre", "post"}, "sub-02": {"pre", "post"}, "sub-03": {"pre"}, "sub-04": {"pre"}}
    table, qc = check_sessions(long, available, "pre", "post", ["hamd"])
    reasons = {(r["participant_id"], r["session"]): r["reason"] for r in qc}
    assert "not a number" in reasons[("sub-02", "pre")] and "sub-02_sessions.tsv" in reasons[("sub-02", "pre")]
    assert "no ses-post data" in reasons[("sub-03", "post")] and "sub-03_sessions.tsv" in reasons[("sub-03", "post")]
    assert "no row for ses-pre" in reasons[("sub-04", "pre")]
    assert len(qc) == 3
    assert np.isnan(table.set_index(["participant_id", "session"]).loc[("sub-02", "pre"), "hamd"])
    assert table.set_index(["participant_id", "session"]).loc[("sub-01", "post"), "hamd"] == 10


def test_long_sessions_table_and_its_errors(tmp_path):
    t = tmp_path / "visits.tsv"
    t.write_text("participant_id\tsession\thamd\n01\tpre\t20\nsub-01\tses-post\t8\n")
    long = read_sessions("", [], t)
    assert set(zip(long["participant_id"], long["session"])) == {("sub-01", "pre"), ("sub-01", "post")}
    t.write_text("participant_id\thamd\nsub-01\t3\n")
    with pytest.raises(InputError, match="visits.tsv.*session"):
        read_sessions("", [], t)
    t.write_text("participant_id\tsession\thamd\nsub-01\tpre\t3\nsub-01\tses-pre\t4\n")
    with pytest.raises(InputError, match="sub-01 ses-pre has two rows"):
        read_sessions("", [], t)


def test_longitudinal_sessions_keeps_baseline_and_followup_and_says_why_not():
    available = {"sub-01": ["pre", "post"], "sub-02": ["pre"], "sub-03": ["post"], "sub-04": ["pre", "post", "mid"]}
    files = {("sub-03", "post"): "sub-03/ses-post/func/x_bold.nii.gz", ("sub-04", "mid"): "sub-04/ses-mid/func/y.nii.gz"}
    chosen, rows = longitudinal_sessions(available, "pre", "post", files)
    assert chosen == {"sub-01": ["pre", "post"], "sub-02": ["pre"], "sub-04": ["pre", "post"]}
    by = {(r["participant_id"], r["session"]): r for r in rows}
    assert by[("sub-02", "pre")]["status"] == "ok" and "baseline only" in by[("sub-02", "pre")]["reason"]
    assert by[("sub-03", "post")]["status"] == "failed" and "x_bold.nii.gz" in by[("sub-03", "post")]["reason"]
    assert by[("sub-04", "mid")]["status"] == "failed" and "ses-mid is neither" in by[("sub-04", "mid")]["reason"]


def test_design_maps_for_the_transcriptomics(tmp_path):
    """change_<m> = the case group's d_z (not the difference rows); assoc_<m>_<var> = partial r of
    the variable's first group; read through the transcriptomics' map reader."""
    from rviflow.transcriptomics.association import read_map

    change = pd.DataFrame(dict(measure="reho", region=["a", "b", "a", "b"], group=["MDD", "MDD", "MDD-HC", "MDD-HC"],
                               d_z=[0.5, -0.2, 9.0, 9.0]))
    change.to_csv(tmp_path / "change.tsv", sep="\t", index=False)
    m = read_map("change_reho", str(tmp_path / "change.tsv"))
    assert m.to_dict() == {"a": 0.5, "b": -0.2}
    assoc = pd.DataFrame(dict(measure="reho", region=["a", "b", "a"], variable=["crp", "crp", "crp"],
                              group=["MDD", "MDD", "all"], r_partial=[0.3, 0.1, 0.7]))
    assoc.to_csv(tmp_path / "associations.tsv", sep="\t", index=False)
    assert read_map("assoc_reho_crp", str(tmp_path / "associations.tsv")).to_dict() == {"a": 0.3, "b": 0.1}
    with pytest.raises(InputError, match="no rows for 'assoc_reho_il6'"):
        read_map("assoc_reho_il6", str(tmp_path / "associations.tsv"))
