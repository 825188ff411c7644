"""Calibration of the designs' p-values (rviflow.cohort.longitudinal, rviflow.cohort.associations).

Null cohorts shaped like real pre / post and biomarker data: 3 sites with additive site
offsets, age acting on the measure, on the change and on the variable / symptom / response
(so an unadjusted test is confounded), a subject effect shared by both sessions, regions
correlated through 3 latent factors, and some patients without follow-up. At alpha 0.05 each p
must reject at the nominal rate (one pre-chosen region per simulated cohort: independent tests,
binomial 99% interval); BH over regions must keep the family-wise rate of the global null near
0.05 (for BH, FDR = FWER when nothing is planted); a planted effect must be found (power).
Results go to benchmarks/results/calibration.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from calibration_record import binomial_interval, record

from rviflow.cohort.associations import associations, fdr
from rviflow.cohort.longitudinal import change_associations, paired_change, predict_response

N_REG = 40
GROUPS = {"case": "MDD", "control": "HC"}


def _cohort(rng, n=48, change=0.0, coupling=0.0, assoc=0.0):
    """participants (diagnosis, age, sex, site, crp), baseline / follow-up tables, symptom change.
    Planted effects act on regions 0-4 (region 10 is the null region of the FPR)."""
    pids = [f"sub-{i:03d}" for i in range(n)]
    site = np.arange(n) % 3
    case = np.arange(n) % 4 != 3
    age = rng.uniform(20, 65, n)
    parts = pd.DataFrame(dict(participant_id=pids, diagnosis=np.where(case, "MDD", "HC"), age=age,
                              sex=rng.choice(["F", "M"], n), site=[f"s{k}" for k in site]))
    load = rng.normal(0, 0.6, (3, N_REG))

    def regional(scale=1.0):
        return (rng.normal(size=(n, 3)) @ load + rng.normal(size=(n, N_REG))) * scale

    subject = regional() + (site[:, None] - 1) * 0.8 + 0.03 * (age[:, None] - 45)
    base = subject + 0.5 * regional()
    age_c = (age - 42.5) / 15                                         # population mean 0: no mean change
    drop = 0.6 * age_c + 0.5 * (site - 1) + rng.normal(size=n)       # symptom change, confounded by age and site
    crp = 0.7 * age_c + 0.6 * (site - 1) + rng.normal(size=n)         # biomarker, confounded likewise
    d = 0.5 * regional() + 0.4 * age_c[:, None]                        # change: age-dependent, mean 0
    d[:, :5] += np.outer(case, np.full(5, change)) + np.outer(case * (drop - drop[case].mean()), np.full(5, coupling))
    base[:, :5] += np.outer(crp * case, np.full(5, assoc))
    follow = base + d
    cols = [f"r{j:02d}" for j in range(N_REG)]
    base = pd.DataFrame(base, index=pids, columns=cols)
    follow = pd.DataFrame(follow, index=pids, columns=cols)
    follow = follow[~(case & (rng.random(n) < 0.15))]                  # some patients without follow-up
    parts["crp"] = crp
    return parts, base, follow, pd.DataFrame({"hamd": drop}, index=pids)


def _rates(ps, alpha=0.05):
    return float(np.mean(np.asarray(ps) < alpha))


def test_change_and_change_symptom_p_are_calibrated_and_find_planted_effects():
    rng = np.random.default_rng(18)
    n_sim = 200
    p_change, p_couple, p_diff, fwer_change, fwer_couple, p_naive = [], [], [], [], [], []
    for _ in range(n_sim):
        parts, base, follow, delta = _cohort(rng)
        ch = paired_change(base, follow, parts, "m", "diagnosis", GROUPS, ["age", "sex"], "site")
        mdd = ch[ch["group"] == "MDD"]
        p_change.append(mdd["p"].iloc[10])
        p_diff.append(ch[ch["group"] == "MDD-HC"]["p"].iloc[10])
        fwer_change.append((mdd["q_fdr"] < 0.05).any())
        ca = change_associations(base, follow, delta, parts, "m", "diagnosis", ["MDD"], ["age", "sex"], "site")
        p_couple.append(ca["p"].iloc[10])
        fwer_couple.append((ca["q_fdr"] < 0.05).any())
        naive = change_associations(base, follow, delta, parts, "m", "diagnosis", ["MDD"], [], None)
        p_naive.append(naive["p"].iloc[10])
    lo, hi = binomial_interval(n_sim)
    power_change, power_couple = [], []
    for _ in range(25):
        parts, base, follow, delta = _cohort(rng, change=1.0, coupling=0.5)
        ch = paired_change(base, follow, parts, "m", "diagnosis", GROUPS, ["age", "sex"], "site")
        power_change.append(np.mean(ch[ch["group"] == "MDD"]["q_fdr"].iloc[:5] < 0.05))
        ca = change_associations(base, follow, delta, parts, "m", "diagnosis", ["MDD"], ["age", "sex"], "site")
        power_couple.append(np.mean(ca["q_fdr"].iloc[:5] < 0.05))
    rows = [dict(p="change (MDD, paired t)", n_sim=n_sim, fpr=_rates(p_change),
                 fwer_bh=float(np.mean(fwer_change)), interval=f"[{lo:.3f}, {hi:.3f}]",
                 power=float(np.mean(power_change)), planted="change 1.0 (d_z ~1.2) in 5 of 40 regions, q < 0.05"),
            dict(p="change MDD - HC difference", n_sim=n_sim, fpr=_rates(p_diff), fwer_bh=float("nan"),
                 interval=f"[{lo:.3f}, {hi:.3f}]", power=float("nan"), planted="-"),
            dict(p="change vs symptom change, partial r", n_sim=n_sim, fpr=_rates(p_couple),
                 fwer_bh=float(np.mean(fwer_couple)), interval=f"[{lo:.3f}, {hi:.3f}]",
                 power=float(np.mean(power_couple)), planted="slope 0.5 per SD of symptom change, q < 0.05"),
            dict(p="change vs symptom change, NOT adjusted (shows the null has confounding)", n_sim=n_sim,
                 fpr=_rates(p_naive), fwer_bh=float("nan"), interval="-", power=float("nan"), planted="-")]
    record("designs: longitudinal change and change-symptom partial r", rows,
           "Null cohorts of 48 (3 sites, 36 patients, ~15% without follow-up, 40 regions correlated through "
           "3 factors; age acting on the change and the symptom change). FPR of one region per cohort at 0.05; "
           "fwer_bh = cohorts with any BH q < 0.05 (the FDR under the global null). Power: share of the 5 "
           "planted regions at q < 0.05 (25 cohorts).")
    for r in rows[:3]:
        assert lo <= r["fpr"] <= hi, r
    assert np.mean(fwer_change) <= 0.09 and np.mean(fwer_couple) <= 0.09
    assert _rates(p_naive) > hi  # the confounding is real: the adjustment is what keeps the FPR
    assert np.mean(power_change) > 0.8 and np.mean(power_couple) > 0.5


def test_response_prediction_permutation_p_is_calibrated_and_finds_a_planted_predictor():
    rng = np.random.default_rng(19)
    n_sim, n_perm = 120, 99
    p_null = []
    for _ in range(n_sim):
        parts, base, _, delta = _cohort(rng, n=40)
        cov = pd.get_dummies(parts.set_index("participant_id")[["age", "site"]], columns=["site"], drop_first=True,
                             dtype=float)
        res = predict_response(base, delta["hamd"], cov, parts.set_index("participant_id")["site"], "ridge",
                               n_perm=n_perm, seed=int(rng.integers(1 << 30)))
        p_null.append(res["p_perm"])
    power = []
    for _ in range(20):
        parts, base, _, delta = _cohort(rng, n=40)
        y = delta["hamd"] + 0.8 * base.iloc[:, :5].mean(1) / base.iloc[:, :5].mean(1).std()
        res = predict_response(base, y, None, None, "ridge", n_perm=n_perm, seed=1)
        power.append(res["p_perm"] < 0.05)
    svr_planted = predict_response(base, y, None, None, "svr", n_perm=19, seed=1)
    lo, hi = binomial_interval(n_sim)
    rows = [dict(p="response prediction, ridge nested CV, permutation p (99 perms)", n_sim=n_sim,
                 fpr=_rates(p_null), interval=f"[{lo:.3f}, {hi:.3f}]", power=float(np.mean(power)),
                 planted="response = null + 0.8 SD x mean of 5 baseline regions")]
    record("designs: response prediction permutation p", rows,
           "Null cohorts of 40 (3 sites; features and response both depend on age and site, not on each other); "
           "covariates regressed out of the features inside each training fold, response permuted within site, "
           "the whole nested cross-validation repeated per permutation. Power from 20 planted cohorts.")
    assert lo <= _rates(p_null) <= hi
    assert np.mean(power) > 0.8
    assert svr_planted["r"] > 0.3


def test_association_p_is_calibrated_and_finds_a_planted_association():
    rng = np.random.default_rng(20)
    n_sim = 200
    p_adj, p_naive, fwer = [], [], []
    for _ in range(n_sim):
        parts, base, _, _ = _cohort(rng)
        res = associations({"m": base}, parts, ["crp"], {"MDD": ["MDD"], "all": ["MDD", "HC"]}, "diagnosis",
                           ["age", "sex"], "site")
        p_adj.append(res[(res["group"] == "MDD")]["p"].iloc[10])
        fwer.append((res[(res["group"] == "all")]["q_fdr"] < 0.05).any())
        naive = associations({"m": base}, parts, ["crp"], {"MDD": ["MDD"]}, "diagnosis", [], None)
        p_naive.append(naive["p"].iloc[10])
    power = []
    for _ in range(25):
        parts, base, _, _ = _cohort(rng, assoc=1.3)
        res = associations({"m": base}, parts, ["crp"], {"MDD": ["MDD"]}, "diagnosis", ["age", "sex"], "site")
        power.append(np.mean(res["q_fdr"].iloc[:5] < 0.05))
    lo, hi = binomial_interval(n_sim)
    rows = [dict(p="association, partial r (covariates + site)", n_sim=n_sim, fpr=_rates(p_adj),
                 fwer_bh=float(np.mean(fwer)), interval=f"[{lo:.3f}, {hi:.3f}]", power=float(np.mean(power)),
                 planted="slope 1.3 per unit of the variable (partial r ~0.55) in 5 of 40 regions, q < 0.05"),
            dict(p="association NOT adjusted (shows the null has confounding)", n_sim=n_sim, fpr=_rates(p_naive),
                 fwer_bh=float("nan"), interval="-", power=float("nan"), planted="-")]
    record("designs: region-level associations", rows,
           "Null cohorts of 48 (3 sites; the variable depends on age and site, the measure on site and age). "
           "FPR of one region per cohort within patients; fwer_bh in the 'all' group (both groups, group as a "
           "nuisance term). Power: share of planted regions at q < 0.05.")
    assert lo <= _rates(p_adj) <= hi
    assert np.mean(fwer) <= 0.09
    assert _rates(p_naive) > hi
    assert np.mean(power) > 0.6


def test_fdr_keeps_missing_p():
    q = fdr(np.array([0.01, np.nan, 0.04]))
    assert np.isnan(q[1]) and np.allclose(q[[0, 2]], [0.02, 0.04])
