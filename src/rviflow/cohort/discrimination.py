"""How well RVIs separate patients from controls, and how they track symptoms.

- AUC with DeLong's variance (DeLong et al. 1988, fast midrank form of Sun & Xu 2014), a CI on
  the logit scale clipped to [0, 1] and the paired DeLong test of two scores on the same subjects;
- :func:`rvi_summary`: per measure, AUC of the out-of-fold RVI, AUC of the best single region
  chosen in the same folds, adjusted d of the RVI; measures compared pairwise (paired DeLong).
  Out-of-fold scores are dependent (shared training folds), so DeLong's and the t test's p are
  anti-conservative for them: with a label-permutation null (:mod:`rviflow.cohort.rvi_null`) ``p`` is the
  permutation p and the parametric one stays in ``p_parametric``;
- :func:`rvi_symptoms`: partial correlation of each measure's RVI with a symptom score within
  patients (covariates regressed out of both), Fisher-z CI; measures compared by a paired
  bootstrap of the difference in partial r.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from rviflow.cohort.effects import effect_sizes
from rviflow.errors import InputError

Z95 = stats.norm.ppf(0.975)
SUMMARY_COLUMNS = ["measure", "statistic", "estimate", "ci_low", "ci_high", "p", "p_parametric", "n_perm", "n_case",
                   "n_control", "note"]
SYMPTOM_COLUMNS = ["measure", "symptom", "statistic", "estimate", "ci_low", "ci_high", "p", "n"]


def _midrank_components(pos: np.ndarray, neg: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    m, n = len(pos), len(neg)
    allr = stats.rankdata(np.r_[pos, neg])
    v10 = (allr[:m] - stats.rankdata(pos)) / n
    v01 = 1.0 - (allr[m:] - stats.rankdata(neg)) / m
    return v10.mean(), v10, v01


def auc_delong(scores: np.ndarray, is_case: np.ndarray) -> tuple[float, float]:
    """AUC (P(score_case > score_control) + ties / 2) and its DeLong variance."""
    scores, is_case = np.asarray(scores, float), np.asarray(is_case, bool)
    auc, v10, v01 = _midrank_components(scores[is_case], scores[~is_case])
    var = v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01)
    return auc, var


def auc_ci(auc: float, var: float) -> tuple[float, float]:
    """95% CI on the logit scale (stays inside [0, 1])."""
    a = min(max(auc, 1e-6), 1 - 1e-6)
    se = np.sqrt(var) / (a * (1 - a))
    lo, hi = np.log(a / (1 - a)) - Z95 * se, np.log(a / (1 - a)) + Z95 * se
    return 1 / (1 + np.exp(-lo)), 1 / (1 + np.exp(-hi))


def delong_paired(s1: np.ndarray, s2: np.ndarray, is_case: np.ndarray) -> tuple[float, float]:
    """AUC1 - AUC2 of two scores of the same subjects and the two-sided DeLong p."""
    is_case = np.asarray(is_case, bool)
    comps = [_midrank_components(np.asarray(s, float)[is_case], np.asarray(s, float)[~is_case]) for s in (s1, s2)]
    a = np.array([c[0] for c in comps])
    s10 = np.cov(np.vstack([c[1] for c in comps]))
    s01 = np.cov(np.vstack([c[2] for c in comps]))
    cov = s10 / is_case.sum() + s01 / (~is_case).sum()
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = a[0] - a[1]
    p = 2 * stats.norm.sf(abs(diff) / np.sqrt(var)) if var > 0 else 1.0
    return diff, p


def rvi_summary(rvi: pd.DataFrame, design: pd.DataFrame, perm_p: dict[str, dict[str, float]] | None = None,
                n_perm: int = 0) -> pd.DataFrame:
    """Discrimination per measure from :func:`rviflow.cohort.rvi.cross_validated_rvi` outputs.

    Parameters
    ----------
    rvi : long table (participant_id, measure, rvi, avi, fold, single_region, best_region)
    design : :func:`rviflow.cohort.effects.design_matrix` of the cohort (case column, covariates)
    perm_p : measure -> {auc_rvi, auc_best_region, d_rvi: permutation p}
        (:func:`rviflow.cohort.rvi_null.permutation_p`); those rows' ``p`` (``p_parametric`` keeps
        DeLong's / the t test's). Other rows: ``p`` = ``p_parametric``, n_perm 0.
    """
    perm_p = perm_p or {}
    rows = []
    per = {}
    for m, g in rvi.groupby("measure", sort=False):
        g = g.set_index("participant_id")
        case = design.loc[g.index, "case"].to_numpy() == 1
        n1, n0 = int(case.sum()), int((~case).sum())
        per[m] = (g, case)
        for stat, col in (("auc_rvi", "rvi"), ("auc_best_region", "single_region")):
            auc, var = auc_delong(g[col].to_numpy(), case)
            lo, hi = auc_ci(auc, var)
            p = 2 * stats.norm.sf(abs(auc - 0.5) / np.sqrt(var)) if var > 0 else np.nan
            note = "out of fold" if stat == "auc_best_region" or (g["fold"] > 0).all() else "external EP"
            if stat == "auc_best_region":
                note += "; region most often chosen: " + g["best_region"].mode().iloc[0]
            rows.append(dict(measure=m, statistic=stat, estimate=auc, ci_low=lo, ci_high=hi, p=p,
                             n_case=n1, n_control=n0, note=note))
        diff, p = delong_paired(g["rvi"].to_numpy(), g["single_region"].to_numpy(), case)
        rows.append(dict(measure=m, statistic="auc_rvi_minus_best_region", estimate=diff, ci_low=np.nan,
                         ci_high=np.nan, p=p, n_case=n1, n_control=n0, note="paired DeLong"))
        eff = effect_sizes(g[["rvi"]], design.loc[g.index], m, min_per_group=2).iloc[0]
        rows.append(dict(measure=m, statistic="d_rvi", estimate=eff["d"], ci_low=eff["ci_low"],
                         ci_high=eff["ci_high"], p=eff["p"], n_case=n1, n_control=n0, note="covariate-adjusted"))
    for row in rows:
        row["p_parametric"] = row["p"]
        pp = perm_p.get(row["measure"], {}).get(row["statistic"])
        row["n_perm"] = n_perm if pp is not None else 0
        if pp is not None:
            row["p"] = pp
            row["note"] += (f"; DeLong variance x the fold-dependence inflation from {n_perm} label permutations"
                            if row["statistic"] == "auc_rvi_minus_best_region" else
                            f"; p from {n_perm} label permutations (cross-validation repeated)")
    names = list(per)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = per[a][0].index.intersection(per[b][0].index)
            if len(common) < 4:
                continue
            case = design.loc[common, "case"].to_numpy() == 1
            diff, p = delong_paired(per[a][0].loc[common, "rvi"], per[b][0].loc[common, "rvi"], case)
            note, p_par = "paired DeLong on subjects with both", p
            infl = [perm_p.get(m, {}).get("auc_inflation") for m in (a, b)]
            if None not in infl and p < 1:
                # the fold dependence inflates each AUC's variance by the factor its permutations
                # measure; the difference's DeLong variance is scaled by their mean (an approximation)
                f = float(np.mean(infl))
                p = float(2 * stats.norm.sf(stats.norm.isf(p / 2) / np.sqrt(f)))
                note += f"; DeLong variance x {f:.2f} (fold-dependence inflation from label permutations)"
            rows.append(dict(measure=f"{a}-{b}", statistic="auc_rvi_difference", estimate=diff, ci_low=np.nan,
                             ci_high=np.nan, p=p, p_parametric=p_par, n_perm=n_perm if None not in infl else 0,
                             n_case=int(case.sum()), n_control=int((~case).sum()), note=note))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _residual(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    return y - X @ np.linalg.lstsq(X, y, rcond=None)[0]


def partial_r(x: np.ndarray, y: np.ndarray, X: np.ndarray) -> float:
    """Pearson r of x and y after regressing the columns of X (with intercept) out of both."""
    return float(np.corrcoef(_residual(x, X), _residual(y, X))[0, 1])


def rvi_symptoms(rvi: pd.DataFrame, design: pd.DataFrame, symptoms: pd.DataFrame,
                 n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Partial correlation of each measure's RVI with each symptom score, within patients.

    ``symptoms``: participant_id-indexed columns (e.g. hamd); patients without a score are
    left out. Measures are compared on the patients with both RVIs (bootstrap of r_a - r_b).
    """
    rng = np.random.default_rng(seed)
    rows = []
    cov_cols = [c for c in design.columns if c != "case"]
    for sym in symptoms.columns:
        rs = {}
        for m, g in rvi.groupby("measure", sort=False):
            g = g.set_index("participant_id")
            pts = [p for p in g.index if design.loc[p, "case"] == 1 and pd.notna(symptoms[sym].get(p))]
            X = design.loc[pts, cov_cols]
            X = X.loc[:, X.std(ddof=0).gt(0) | X.columns.isin(["intercept"])].to_numpy(float)
            n, k = len(pts), X.shape[1] - 1
            if n - k < 4:
                raise InputError(f"{sym}: {n} patients with a score and an {m} RVI; too few for a partial "
                                 f"correlation with {k} covariate terms")
            x, y = g.loc[pts, "rvi"].to_numpy(float), symptoms.loc[pts, sym].to_numpy(float)
            r = partial_r(x, y, X)
            dof = n - 2 - k
            t = r * np.sqrt(dof / max(1 - r**2, 1e-300))
            se = 1 / np.sqrt(max(n - 3 - k, 1))
            rows.append(dict(measure=m, symptom=sym, statistic="partial_r", estimate=r,
                             ci_low=np.tanh(np.arctanh(r) - Z95 * se), ci_high=np.tanh(np.arctanh(r) + Z95 * se),
                             p=2 * stats.t.sf(abs(t), dof), n=n))
            rs[m] = (g, pts, X)
        names = list(rs)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                pts = [p for p in rs[a][1] if p in set(rs[b][1])]
                if len(pts) < 6:
                    continue
                X = design.loc[pts, cov_cols]
                X = X.loc[:, X.std(ddof=0).gt(0) | X.columns.isin(["intercept"])].to_numpy(float)
                xa, xb = rs[a][0].loc[pts, "rvi"].to_numpy(float), rs[b][0].loc[pts, "rvi"].to_numpy(float)
                y = symptoms.loc[pts, sym].to_numpy(float)
                diff = partial_r(xa, y, X) - partial_r(xb, y, X)
                boot = np.empty(n_boot)
                for j in range(n_boot):
                    idx = rng.integers(0, len(pts), len(pts))
                    boot[j] = partial_r(xa[idx], y[idx], X[idx]) - partial_r(xb[idx], y[idx], X[idx])
                lo, hi = np.nanpercentile(boot, [2.5, 97.5])
                p = min(1.0, 2 * min((np.sum(boot <= 0) + 1), (np.sum(boot >= 0) + 1)) / (n_boot + 1))
                rows.append(dict(measure=f"{a}-{b}", symptom=sym, statistic="partial_r_difference", estimate=diff,
                                 ci_low=lo, ci_high=hi, p=p, n=len(pts)))
    return pd.DataFrame(rows, columns=SYMPTOM_COLUMNS)
