"""Effect sizes at scale (vectorised OLS vs statsmodels), ENIGMA hemisphere averages, |d| ratio."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from rviflow.cohort.effects import adjusted_d, design_matrix, effect_size_ratio, effect_sizes, hemisphere_mean_values


def _cohort(rng, n=400):
    p = pd.DataFrame(dict(participant_id=[f"sub-{i:04d}" for i in range(n)],
                          diagnosis=np.where(np.arange(n) % 2 == 0, "MDD", "HC"), age=rng.uniform(20, 60, n),
                          sex=rng.choice(["F", "M"], n), site=rng.choice(["a", "b", "c"], n)))
    return p, design_matrix(p, "diagnosis", "MDD", "HC", ["age", "sex"], "site")


def test_vectorised_effect_sizes_equal_statsmodels_per_region():
    """Reference: statsmodels OLS fitted region by region, d = beta / sqrt(scale)."""
    rng = np.random.default_rng(0)
    p, X = _cohort(rng, 300)
    vals = pd.DataFrame(rng.normal(size=(300, 5)), index=p["participant_id"], columns=list("abcde"))
    vals["a"] -= 0.5 * X["case"].to_numpy()
    vals.iloc[3, 4] = np.nan  # region e goes through the per-region path
    eff = effect_sizes(vals, X, "m").set_index("region")
    assert list(eff.index) == list("abcde")
    for r in "abcde":
        ok = vals[r].notna()
        fit = sm.OLS(vals.loc[ok, r].to_numpy(), X.loc[ok].to_numpy(float)).fit()
        assert eff.loc[r, "d"] == pytest.approx(fit.params[1] / np.sqrt(fit.scale), rel=1e-9)
        assert eff.loc[r, "t"] == pytest.approx(fit.tvalues[1], rel=1e-9)
        assert eff.loc[r, "p"] == pytest.approx(fit.pvalues[1], rel=1e-7)
    np.testing.assert_allclose(adjusted_d(vals[list("abcd")].to_numpy(), X.to_numpy(float)), eff["d"][:4], rtol=1e-9)


def test_hemisphere_average_follows_enigma():
    vals = pd.DataFrame({"L_insula": [2.0, 3.0], "R_insula": [4.0, 5.0], "brainstem": [1.0, 1.5],
                         "L_precuneus": [2.5, np.nan], "R_precuneus": [2.7, 2.9]})
    h = hemisphere_mean_values(vals)
    assert list(h.columns) == ["insula", "brainstem", "precuneus"]
    assert h["insula"].tolist() == [3.0, 4.0] and h["brainstem"].tolist() == [1.0, 1.5]
    assert h["precuneus"].iloc[0] == pytest.approx(2.6) and np.isnan(h["precuneus"].iloc[1])


def test_effect_size_ratio_recovers_planted_three_to_one():
    """ReHo d = -0.6, thickness d = -0.2 in every region: median |d| ratio 3 inside the bootstrap CI."""
    rng = np.random.default_rng(1)
    p, X = _cohort(rng, 1200)
    case = X["case"].to_numpy()[:, None]
    cols = [f"L_r{j}" for j in range(20)]
    reho = pd.DataFrame(rng.normal(size=(1200, 20)) - 0.6 * case, index=X.index, columns=cols)
    thick = pd.DataFrame(rng.normal(size=(1200, 20)) - 0.2 * case, index=X.index, columns=cols)
    r = effect_size_ratio({"reho": reho, "thickness": thick}, X, ["reho", "cbf"], ["thickness"], n_boot=300).iloc[0]
    assert r["measure_a"] == "reho" and r["measure_b"] == "thickness" and r["n_regions"] == 20
    assert r["ci_low"] < 3 < r["ci_high"] and r["ci_low"] > 1.5 and r["p_boot"] < 0.01
    assert r["ratio"] == pytest.approx(r["median_abs_d_a"] / r["median_abs_d_b"])
