"""Nested cross-validated prediction: real signal found, no signal not invented, no fold leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd

import rviflow.cohort.harmonize as harmonize
from rviflow.cohort.effects import design_matrix
from rviflow.cohort.harmonize import combat_covariates
from rviflow.cohort.predict import prediction_table


def _data(rng, n=64, d=1.0, n_regions=8, hamd_signal=True):
    p = pd.DataFrame(dict(participant_id=[f"sub-{i:03d}" for i in range(n)],
                          diagnosis=np.where(np.arange(n) % 2 == 0, "MDD", "HC"),
                          age=rng.uniform(20, 60, n), sex=rng.choice(["F", "M"], n),
                          site=np.array(["a", "b", "c", "d"])[(np.arange(n) // 2) % 4]))
    case = (p["diagnosis"] == "MDD").to_numpy()
    y = rng.normal(size=(n, n_regions)) + np.array([0.0, 0.8, -0.5, 0.3])[(np.arange(n) // 2) % 4][:, None]
    y[case, :4] -= d
    sev = rng.normal(size=n)
    if hamd_signal:
        y[:, 5] += 1.5 * sev * case
    p["hamd"] = np.where(case, 20 + 5 * sev, 2)
    vals = pd.DataFrame(y, index=p["participant_id"], columns=[f"r{j}" for j in range(n_regions)])
    X = design_matrix(p, "diagnosis", "MDD", "HC", ["age", "sex"], "site")
    return p, vals, X


def test_prediction_finds_planted_signal():
    rng = np.random.default_rng(0)
    p, vals, X = _data(rng)
    sites = p.set_index("participant_id")["site"]
    cov = combat_covariates(X, sites).drop(columns="case")
    tab = prediction_table({"reho": vals}, X, sites, cov, p.set_index("participant_id")[["hamd"]], n_outer=3)
    t = tab.set_index(["model", "metric"])["estimate"]
    assert t[("logistic_l2", "auc")] > 0.85 and t[("linear_svm", "auc")] > 0.85
    assert t[("linear_svr", "r")] > 0.4
    assert set(tab["features"]) == {"reho"} and tab["harmonized"].all()


def test_no_signal_gives_chance_auc():
    rng = np.random.default_rng(1)
    p, vals, X = _data(rng, d=0.0, hamd_signal=False)
    tab = prediction_table({"reho": vals, "thickness": vals.sample(frac=1, axis=1, random_state=0)}, X, None, None,
                           None, n_outer=3)
    auc = tab[tab["metric"] == "auc"]
    assert set(auc["features"]) == {"reho", "thickness", "combined"}
    assert (auc["ci_low"] < 0.5).all() and (auc["estimate"] < 0.72).all()


def test_harmonisation_is_fitted_inside_the_outer_folds(monkeypatch):
    """Spy on ComBat: each fit sees only training subjects, and every subject is a test subject once."""
    rng = np.random.default_rng(2)
    p, vals, X = _data(rng, n=48)
    sites = p.set_index("participant_id")["site"]
    cov = combat_covariates(X, sites).drop(columns="case")
    fits, applies = [], []
    real_fit, real_apply = harmonize.fit_combat, harmonize.apply_combat
    monkeypatch.setattr(harmonize, "fit_combat", lambda v, *a, **k: fits.append(set(v.index)) or real_fit(v, *a, **k))
    monkeypatch.setattr(harmonize, "apply_combat",
                        lambda m, v, *a, **k: applies.append(set(v.index)) or real_apply(m, v, *a, **k))
    prediction_table({"reho": vals}, X, sites, cov, None, n_outer=3)
    assert len(fits) == len(applies) == 3
    for train, test in zip(fits, applies):
        assert not train & test and len(train | test) == 48
    assert set().union(*applies) == set(vals.index)
