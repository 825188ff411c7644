"""ComBat (neuroHarmonize): site offsets removed, diagnosis effect kept, model re-applicable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rviflow.cohort.effects import design_matrix, effect_sizes
from rviflow.errors import InputError
from rviflow.cohort.harmonize import apply_combat, combat_covariates, fit_combat, load_model, save_model


def _cohort(rng, n_per_site=80, offsets=(0.0, 1.5, -1.0), scales=(1.0, 1.2, 0.7), d=-0.6, n_regions=8):
    """ComBat's model: site offset + covariate effects + site-scaled noise (pooled noise SD ~1)."""
    rows, vals = [], []
    for s, (off, sc) in enumerate(zip(offsets, scales)):
        p_case = 0.3 + 0.2 * s  # diagnosis unbalanced across sites (confounded with site)
        for i in range(n_per_site):
            case = rng.random() < p_case
            age = rng.uniform(20, 60)
            rows.append(dict(participant_id=f"sub-{s}{i:03d}", diagnosis="MDD" if case else "HC", age=age,
                             sex=rng.choice(["F", "M"]), site=f"s{s}"))
            fixed = d * case * (np.arange(n_regions) < 4) - 0.02 * (age - 40)
            vals.append(off + fixed + sc * rng.normal(0, 1, n_regions))
    p = pd.DataFrame(rows)
    return p, pd.DataFrame(vals, index=p["participant_id"], columns=[f"r{j}" for j in range(n_regions)])


def test_combat_removes_site_offset_and_keeps_diagnosis():
    """Reference: the planted site offsets / scales and the planted d = -0.6 (regions r0-r3)."""
    rng = np.random.default_rng(11)
    p, vals = _cohort(rng)
    X = design_matrix(p, "diagnosis", "MDD", "HC", ["age", "sex"], None)
    sites = p.set_index("participant_id")["site"]
    model, adj = fit_combat(vals, combat_covariates(X, sites))
    ctrl = X["case"] == 0

    def site_means(v):  # controls (ages drawn alike at every site): only the site remains
        return v[ctrl].groupby(sites[ctrl]).mean()

    before, after = site_means(vals), site_means(adj)
    assert (before.max() - before.min()).min() > 1.5        # planted: 2.5 apart
    assert (after.max() - after.min()).max() < 0.6

    def site_sd(v):  # SD of the residuals after diagnosis, age and site location, per site
        Xs = np.column_stack([X.to_numpy(float), pd.get_dummies(sites, dtype=float).to_numpy()[:, 1:]])
        res = v - Xs @ np.linalg.lstsq(Xs, v.to_numpy(), rcond=None)[0]
        return res.groupby(sites).std()

    sd_before, sd_after = site_sd(vals), site_sd(adj)
    assert (sd_before.max() / sd_before.min()).min() > 1.4   # planted scale ratio 1.7
    assert (sd_after.max() / sd_after.min()).max() < 1.25
    eff = effect_sizes(adj, X, "x").set_index("region")      # no site term: ComBat did it
    for r in ("r0", "r1", "r2", "r3"):
        assert eff.loc[r, "ci_low"] < -0.6 < eff.loc[r, "ci_high"], eff.loc[r]
    assert eff.loc[["r4", "r5", "r6", "r7"], "d"].abs().max() < 0.35
    raw = effect_sizes(vals, X, "x").set_index("region")     # without ComBat (or a site term), sites with
    assert raw.loc[["r4", "r5", "r6", "r7"], "d"].mean() < -0.1  # more cases and lower offsets bias d (~ -0.19)


def test_saved_model_reapplies_without_refitting(tmp_path):
    """Reference: neuroHarmonize's own harmonised training data."""
    rng = np.random.default_rng(2)
    p, vals = _cohort(rng, n_per_site=40)
    X = design_matrix(p, "diagnosis", "MDD", "HC", ["age"], None)
    cov = combat_covariates(X, p.set_index("participant_id")["site"])
    model, adj = fit_combat(vals, cov)
    save_model(model, tmp_path / "m.pkl")
    again = apply_combat(load_model(tmp_path / "m.pkl"), vals.iloc[:7], cov)  # a batch with one site
    np.testing.assert_allclose(again.to_numpy(), adj.iloc[:7].to_numpy(), rtol=1e-6, atol=1e-8)
    one = apply_combat(model, vals.iloc[[3]], cov)
    np.testing.assert_allclose(one.to_numpy(), adj.iloc[[3]].to_numpy(), rtol=1e-6, atol=1e-8)
    cov2 = cov.copy()
    cov2.loc[cov2.index[0], "SITE"] = "elsewhere"
    with pytest.raises(InputError, match="site 'elsewhere' is not in the ComBat reference"):
        apply_combat(model, vals.iloc[:3], cov2)


def test_missing_values_stay_missing():
    rng = np.random.default_rng(3)
    p, vals = _cohort(rng, n_per_site=30)
    vals.iloc[5, 2] = np.nan
    X = design_matrix(p, "diagnosis", "MDD", "HC", [], None)
    _, adj = fit_combat(vals, combat_covariates(X, p.set_index("participant_id")["site"]))
    assert np.isnan(adj.iloc[5, 2]) and adj.drop(index=adj.index[5]).notna().all().all()


def test_small_site_and_constant_region_are_refused():
    rng = np.random.default_rng(4)
    p, vals = _cohort(rng, n_per_site=10)
    p.loc[3, "site"] = "tiny"
    X = design_matrix(p, "diagnosis", "MDD", "HC", [], None)
    cov = combat_covariates(X, p.set_index("participant_id")["site"])
    with pytest.raises(InputError, match="site 'tiny' has 1 subject.*ComBat needs at least 3 per site"):
        fit_combat(vals, cov, min_per_site=3)
    p, vals = _cohort(rng, n_per_site=10)
    vals["r2"] = 4.0
    X = design_matrix(p, "diagnosis", "MDD", "HC", [], None)
    with pytest.raises(InputError, match="r2: the region has the same value in every subject"):
        fit_combat(vals, combat_covariates(X, p.set_index("participant_id")["site"]))
