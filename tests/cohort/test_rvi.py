"""RVI against a plain re-computation of the RVIpkg steps; cross-validated EP; frozen reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import rviflow.cohort.rvi as rvi_mod
from rviflow.cohort.discrimination import auc_delong
from rviflow.cohort.effects import design_matrix
from rviflow.errors import InputError
from rviflow.preprocess.parcellate import default_atlas, read_labels
from rviflow.cohort.rvi import (ENIGMA_MDD_THICKNESS, covariate_design, cross_validated_rvi, fit_reference,
                         read_expected_pattern, score_with_reference)


def _cohort(rng, n_case, n_control, n_regions, d, n_effect=None):
    n = n_case + n_control
    p = pd.DataFrame(dict(participant_id=[f"sub-{i:04d}" for i in range(n)],
                          diagnosis=["MDD"] * n_case + ["HC"] * n_control,
                          age=rng.uniform(20, 65, n), sex=rng.choice(["F", "M"], n),
                          site=rng.choice(["a", "b", "c"], n)))
    case = (p["diagnosis"] == "MDD").to_numpy()
    y = rng.normal(0, 1, (n, n_regions)) + 0.03 * p["age"].to_numpy()[:, None]
    n_effect = n_regions if n_effect is None else n_effect
    y[case, :n_effect] += d
    vals = pd.DataFrame(y, index=p["participant_id"], columns=[f"r{j:02d}" for j in range(n_regions)])
    return p, vals, design_matrix(p, "diagnosis", "MDD", "HC", ["age", "sex"], "site")


def plain_rvipkg(vals: pd.DataFrame, p: pd.DataFrame, ep: pd.Series) -> pd.DataFrame:
    """RVIpkg, step by step and region by region, as R/RVI_func.R does it."""
    p = p.set_index("participant_id").loc[vals.index]
    X = np.column_stack([np.ones(len(p)), p["age"], (p["sex"] == "M").astype(float),
                         (p["site"] == "b").astype(float), (p["site"] == "c").astype(float)])
    ctrl = (p["diagnosis"] == "HC").to_numpy()
    z = {}
    for r in vals.columns:
        y = vals[r].to_numpy()
        resid = y - X @ np.linalg.solve(X.T @ X, X.T @ y)           # lm(y ~ covariates)$residuals
        inv = stats.norm.ppf(stats.rankdata(resid) / (len(resid) + 1))  # qnorm(rank / (n + 1))
        z[r] = (inv - inv[ctrl].mean()) / inv[ctrl].std(ddof=1)    # vs controls' mean and sd
    z = pd.DataFrame(z, index=vals.index)
    out = {}
    for s in z.index:
        out[s] = (np.corrcoef(z.loc[s, ep.index], ep)[0, 1], float((z.loc[s, ep.index] * ep).sum()))
    return pd.DataFrame.from_dict(out, orient="index", columns=["rvi", "avi"])


def test_rvi_equals_plain_rvipkg_steps():
    rng = np.random.default_rng(0)
    p, vals, X = _cohort(rng, 15, 18, 9, -0.5)
    vals.iloc[3, 2] = vals.iloc[4, 2]  # a tie
    ep = pd.Series(rng.normal(0, 0.3, 9), index=vals.columns)
    got = cross_validated_rvi(vals, X, "x", n_folds=3, external_ep=ep)
    ref = plain_rvipkg(vals, p, ep)
    assert (got["fold"] == 0).all()
    np.testing.assert_allclose(got["rvi"], ref["rvi"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["avi"], ref["avi"], rtol=1e-10, atol=1e-10)


def test_cohort_expected_pattern_never_sees_the_scored_subject(monkeypatch):
    """Spy on the EP fits: the training subjects of every fold exclude the fold's scored subjects."""
    rng = np.random.default_rng(1)
    p, vals, X = _cohort(rng, 20, 20, 12, -0.4)
    seen = []
    real = rvi_mod.cohort_expected_pattern
    monkeypatch.setattr(rvi_mod, "cohort_expected_pattern",
                        lambda v, *a, **k: seen.append(set(v.index)) or real(v, *a, **k))
    out = cross_validated_rvi(vals, X, "x", n_folds=4)
    assert len(seen) == 4 and sorted(out["fold"].unique()) == [1, 2, 3, 4]
    for fold, train in enumerate(seen, 1):
        scored = set(out.index[out["fold"] == fold])
        assert scored and not scored & train and len(scored) + len(train) == len(vals)


def test_fold_harmonisation_never_sees_the_scored_subject(monkeypatch):
    """ComBat inside the folds (cohort.harmonize): each fit sees only the fold's training subjects,
    each apply only its scored subjects and no label, and the EP is fitted on the training fold's
    harmonised values, not on the whole-cohort ones."""
    import rviflow.cohort.harmonize as harmonize
    from rviflow.cohort.harmonize import combat_covariates

    rng = np.random.default_rng(4)
    p, vals, X = _cohort(rng, 20, 20, 10, -1.5, n_effect=5)
    sites = p.set_index("participant_id")["site"]
    raw = vals + sites.map({"a": 0.0, "b": 2.0, "c": -2.0}).to_numpy()[:, None]  # site offsets
    cov = combat_covariates(X, sites).drop(columns="case")
    fits, applies, ep_inputs = [], [], []
    real_fit, real_apply, real_ep = harmonize.fit_combat, harmonize.apply_combat, rvi_mod.cohort_expected_pattern
    monkeypatch.setattr(harmonize, "fit_combat", lambda v, c, *a, **k: fits.append((set(v.index), list(c.columns)))
                        or real_fit(v, c, *a, **k))
    monkeypatch.setattr(harmonize, "apply_combat", lambda m, v, c, *a, **k: applies.append(set(v.index))
                        or real_apply(m, v, c, *a, **k))
    monkeypatch.setattr(rvi_mod, "cohort_expected_pattern",
                        lambda v, *a, **k: ep_inputs.append(v) or real_ep(v, *a, **k))
    garbage = pd.DataFrame(rng.normal(size=vals.shape), index=vals.index, columns=vals.columns)
    out = cross_validated_rvi(garbage, X, "x", n_folds=4, sites=sites, site_column="site", raw=raw, combat_covars=cov)
    assert len(fits) == len(applies) == len(ep_inputs) == 4
    for fold, ((train, cols), test, ep_in) in enumerate(zip(fits, applies, ep_inputs), 1):
        scored = set(out.index[out["fold"] == fold])
        assert test == scored and not train & scored and set(ep_in.index) == train and "case" not in cols
        assert not np.allclose(ep_in.to_numpy(), garbage.loc[ep_in.index].to_numpy())
    auc, _ = auc_delong(out["rvi"].to_numpy(), X.loc[out.index, "case"].to_numpy() == 1)
    assert auc > 0.8  # the planted effect survives: fold-harmonised raw values, not the garbage


def test_external_pattern_with_harmonisation_is_scored_on_fold_harmonised_values(monkeypatch):
    """An external EP (e.g. ENIGMA-MDD thickness) with cohort.harmonize: ComBat is refitted in every
    training fold without the diagnosis and applied to the held-out subjects, whose RVI is then
    scored out of fold; the whole-cohort tables (harmonised with diagnosis preserved; here
    garbage) are not used. Reference for one fold: the same steps called by hand."""
    import rviflow.cohort.harmonize as harmonize
    from rviflow.cohort.harmonize import apply_combat, combat_covariates, fit_combat
    from rviflow.cohort.rvi import apply_normaliser, fit_normaliser, rvi_scores

    rng = np.random.default_rng(5)
    p, vals, X = _cohort(rng, 20, 20, 10, -1.5, n_effect=5)
    sites = p.set_index("participant_id")["site"]
    raw = vals + sites.map({"a": 0.0, "b": 2.0, "c": -2.0}).to_numpy()[:, None]
    cov = combat_covariates(X, sites).drop(columns="case")
    ep = pd.Series(np.r_[-np.ones(5), np.zeros(5)] + rng.normal(0, 0.05, 10), index=vals.columns)
    fits = []
    real_fit = harmonize.fit_combat
    monkeypatch.setattr(harmonize, "fit_combat", lambda v, c, *a, **k: fits.append((set(v.index), list(c.columns)))
                        or real_fit(v, c, *a, **k))
    garbage = pd.DataFrame(rng.normal(size=vals.shape), index=vals.index, columns=vals.columns)
    out = cross_validated_rvi(garbage, X, "x", n_folds=4, sites=sites, site_column="site", external_ep=ep, raw=raw,
                              combat_covars=cov)
    assert sorted(out["fold"].unique()) == [1, 2, 3, 4] and len(fits) == 4
    for fold, (train, cols) in enumerate(fits, 1):
        assert not train & set(out.index[out["fold"] == fold]) and "case" not in cols
    test = out.index[out["fold"] == 1]
    train = vals.index.difference(test)
    model, htr = fit_combat(raw.loc[train], cov, 2)
    c = covariate_design(X, "site", False)
    norm, _ = fit_normaliser(htr, c.loc[train], X.loc[train, "case"].to_numpy() == 0)
    z = apply_normaliser(norm, apply_combat(model, raw.loc[test], cov), c.loc[test])
    np.testing.assert_allclose(out.loc[test, "rvi"], rvi_scores(z, ep)["rvi"], rtol=1e-10)
    auc, _ = auc_delong(out["rvi"].to_numpy(), X.loc[out.index, "case"].to_numpy() == 1)
    assert auc > 0.8  # cases are lowered in regions 0-4 as the EP says: the raw values were scored, not garbage


def test_leaky_expected_pattern_would_be_caught():
    """No group effect at all: an EP fitted on everyone makes cases look disorder-like (AUC ~1);
    the cross-validated RVI stays at chance."""
    rng = np.random.default_rng(2)
    p, vals, X = _cohort(rng, 20, 20, 80, 0.0)
    cv = cross_validated_rvi(vals, X, "x", n_folds=5)
    case = X.loc[vals.index, "case"].to_numpy() == 1
    auc_cv, _ = auc_delong(cv["rvi"].to_numpy(), case)
    leaky_ep = rvi_mod.cohort_expected_pattern(vals, X, "x", 3)
    leaky = cross_validated_rvi(vals, X, "x", n_folds=5, external_ep=leaky_ep)
    auc_leaky, _ = auc_delong(leaky["rvi"].to_numpy(), case)
    assert auc_leaky > 0.9 and auc_cv < 0.75


def test_distributed_effect_rvi_beats_best_single_region():
    """d = -0.3 in 30 of 60 regions: the RVI pools them; one region cannot. (A uniform shift of
    every region would be invisible to a correlation: the AVI sees it, the RVI does not.)"""
    rng = np.random.default_rng(3)
    p, vals, X = _cohort(rng, 120, 120, 60, -0.3, n_effect=30)
    out = cross_validated_rvi(vals, X, "x", n_folds=5)
    case = X.loc[vals.index, "case"].to_numpy() == 1
    auc_rvi, _ = auc_delong(out["rvi"].to_numpy(), case)
    auc_one, _ = auc_delong(out["single_region"].to_numpy(), case)
    assert auc_rvi > 0.65 and auc_one < 0.66 and auc_rvi > auc_one + 0.08, (auc_rvi, auc_one)


def test_frozen_reference_scores_do_not_depend_on_the_batch():
    rng = np.random.default_rng(4)
    p, vals, X = _cohort(rng, 40, 40, 20, -0.5)
    train, new = vals.index[:60], vals.index[60:]
    ep = rvi_mod.cohort_expected_pattern(vals.loc[train], X.loc[train], "x", 3)
    ref = fit_reference(vals.loc[train], X.loc[train], "x", ep)
    batch = score_with_reference(ref, vals.loc[new], X)
    alone = score_with_reference(ref, vals.loc[new[:3]], X)
    pd.testing.assert_frame_equal(batch.loc[new[:3]], alone)
    again = score_with_reference(ref, vals.loc[train], X)  # the reference's own subjects: close to refit
    refit = cross_validated_rvi(vals.loc[train], X.loc[train], "x", external_ep=ep)
    assert np.corrcoef(again["rvi"], refit["rvi"])[0, 1] > 0.99


def test_enigma_expected_pattern_has_dk_names():
    """Reference: resources/enigma-mdd (ENIGMA Toolbox summary statistics, Schmaal et al. 2017)."""
    ep = read_expected_pattern(ENIGMA_MDD_THICKNESS)
    names = set(read_labels(default_atlas()[1])["name"])
    assert len(ep) == 68 and set(ep.index) <= names
    assert ep["L_fusiform"] == pytest.approx(-0.117) and (ep < 0).mean() > 0.7


def test_too_few_subjects_for_folds_is_a_clear_message():
    rng = np.random.default_rng(5)
    p, vals, X = _cohort(rng, 6, 30, 10, -0.5)
    with pytest.raises(InputError, match="cases and .* controls in a training fold; at least 5"):
        cross_validated_rvi(vals, X, "x", n_folds=5, min_per_group=5)
    with pytest.raises(InputError, match="RVI needs at least 2 of each"):
        cross_validated_rvi(vals.iloc[5:], X.iloc[5:], "x")
    assert list(covariate_design(X, "site", True).columns) == ["intercept", "age", "sex_M"]


@pytest.mark.parametrize("case", ["cohort_ep", "cohort_ep_within_site", "fold_combat", "external_whole",
                                  "external_fold_combat"])
def test_permutation_null_row0_is_the_reported_summary(case):
    """rvi_null recomputes the cross-validated RVI from cached label-free parts: with the observed
    labels (row 0) it must give rvi_summary's numbers for cross_validated_rvi's scores, in every
    mode (cohort EP, ComBat in folds, external EP on the whole cohort or in folds)."""
    from rviflow.cohort.discrimination import rvi_summary
    from rviflow.cohort.harmonize import combat_covariates
    from rviflow.cohort.rvi_null import permutation_p, rvi_permutation_null

    rng = np.random.default_rng(6)
    p, vals, X = _cohort(rng, 24, 21, 10, -0.6, n_effect=5)
    sites = p.set_index("participant_id")["site"]
    raw = vals + sites.map({"a": 0.0, "b": 1.0, "c": -1.0}).to_numpy()[:, None]
    ext = pd.Series(np.r_[-np.ones(5), np.zeros(5)], index=vals.columns) if "external" in case else None
    combat = (raw, combat_covariates(X, sites).drop(columns="case")) if "combat" in case else (None, None)
    kw = dict(sites=sites, site_column="site", external_ep=ext, raw=combat[0], combat_covars=combat[1],
              within_site="within_site" in case)
    out = cross_validated_rvi(vals, X, "x", 4, 3, **kw)
    summ = rvi_summary(out.rename_axis("participant_id").reset_index().assign(measure="x"), X).set_index("statistic")
    null = rvi_permutation_null(vals, X, "x", 4, 3, n_perm=30, **kw)
    for stat in ("auc_rvi", "auc_best_region", "d_rvi"):
        assert null[stat].iloc[0] == pytest.approx(summ.loc[stat, "estimate"], abs=1e-10), stat
    assert null["auc_diff"].iloc[0] == pytest.approx(summ.loc["auc_rvi_minus_best_region", "estimate"], abs=1e-10)
    assert len(null) == 31 and null["auc_rvi"].iloc[1:].std() > 0
    p_perm = permutation_p(null)
    assert p_perm["auc_rvi"] == pytest.approx(min(1, 2 * min((1 + (null["auc_rvi"][1:] >= null["auc_rvi"][0]).sum()),
                                                             (1 + (null["auc_rvi"][1:] <= null["auc_rvi"][0]).sum())) / 31))
    with_perm = rvi_summary(out.rename_axis("participant_id").reset_index().assign(measure="x"), X, {"x": p_perm},
                            30).set_index("statistic")
    assert with_perm.loc["auc_rvi", "p"] == p_perm["auc_rvi"] and with_perm.loc["auc_rvi", "n_perm"] == 30
    assert with_perm.loc["auc_rvi", "p_parametric"] == summ.loc["auc_rvi", "p"]
