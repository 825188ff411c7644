"""Label-permutation null of the RVI's discrimination statistics (AUC of the RVI and of the best
single region, d of the RVI).

Why not DeLong: the RVIs come out of cross-validation, and subjects scored in the same fold share
the expected pattern and normalisation fitted on the other folds, so their scores are dependent;
DeLong's variance (which assumes independent subjects) is too small and its p anti-conservative
under the null (tests/cohort/test_calibration_cohort.py measures it). The permutation test of the whole
cross-validated procedure is exact under exchangeable labels (Ojala & Garriga 2010, JMLR
11:1833).

The folds stay those of :func:`rviflow.cohort.rvi.cross_validated_rvi` (stratified by the observed
labels) and the diagnosis is permuted within fold x site blocks (exchangeability blocks, Winkler
et al. 2014): every permuted labelling has the fold class counts the stratification gave, so the
folds are what StratifiedKFold would give it too. Within a fold everything label-free is computed
once -- ComBat (fitted without the diagnosis), covariate residuals, rank-based inverse-normal
values of training and held-out subjects -- and per permutation only what depends on the labels
is recomputed: the controls' mean and SD, the expected pattern (training d) and the scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rviflow.cohort.discrimination import auc_delong

from rviflow.cohort.effects import adjusted_d
from rviflow.cohort.rvi import (Normaliser, apply_normaliser, covariate_design, fit_normaliser, rvi_scores)

STATISTICS = ("auc_rvi", "auc_best_region", "d_rvi")
#: per permutation also: the paired difference auc_rvi - auc_best_region and its DeLong variance
COLUMNS = (*STATISTICS, "auc_diff", "var_delong_diff", "var_delong_rvi")


def _folds(values: pd.DataFrame, case: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    k = min(n_folds, int(min(case.sum(), (~case).sum())))
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(values, case))


def block_permutations(blocks: np.ndarray, n_perm: int, seed: int) -> np.ndarray:
    """(n_perm, n) permutations of 0..n-1 within each block label."""
    from rviflow.cohort.permutation import within_block_permutations

    return within_block_permutations(blocks, len(blocks), n_perm, seed)


def _rvi_d(rvi: np.ndarray, X: np.ndarray, k: int) -> float:
    return float(adjusted_d(rvi[:, None], X, k)[0])


def _auc(scores: np.ndarray, is_case: np.ndarray) -> float:
    """Mann-Whitney AUC with midranks (= :func:`rviflow.cohort.discrimination.auc_delong`'s AUC), one ranking."""
    from scipy.stats import rankdata

    n1 = is_case.sum()
    return float((rankdata(scores)[is_case].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(scores) - n1)))


def _rvi(z: np.ndarray, ep: np.ndarray, regions: list[str]) -> np.ndarray:
    """Row-wise Pearson r of z (n, R) with ep (R,): :func:`rviflow.cohort.rvi.rvi_scores` without pandas
    when nothing is missing (the permutation loop's hot path)."""
    if np.isnan(z).any() or np.isnan(ep).any():
        return rvi_scores(pd.DataFrame(z, columns=regions), pd.Series(ep, index=regions))["rvi"].to_numpy()
    zc = z - z.mean(1, keepdims=True)
    ec = ep - ep.mean()
    return (zc @ ec) / np.sqrt((zc**2).sum(1) * (ec**2).sum())


def rvi_permutation_null(
    values: pd.DataFrame, design: pd.DataFrame, measure: str, n_folds: int = 5, seed: int = 0,
    sites: pd.Series | None = None, site_column: str | None = None, within_site: bool = False,
    external_ep: pd.Series | None = None, raw: pd.DataFrame | None = None,
    combat_covars: pd.DataFrame | None = None, min_per_site: int = 2, n_perm: int = 1000,
) -> pd.DataFrame:
    """(n_perm + 1, :data:`STATISTICS`) the statistics of the observed labels (row 0; the same
    numbers :func:`rviflow.cohort.discrimination.rvi_summary` reports for the out-of-fold RVIs of
    :func:`rviflow.cohort.rvi.cross_validated_rvi` with these arguments) and of ``n_perm`` permutations.

    Arguments as :func:`rviflow.cohort.rvi.cross_validated_rvi`. With an external EP and no ``raw`` the
    RVI is computed on the whole cohort (fold 0); the permutation then recomputes the controls'
    mean and SD only.
    """
    design = design.loc[values.index]
    case = design["case"].to_numpy() == 1
    n = len(values)
    cov = covariate_design(design, site_column, within_site)
    dcols = [c for c in design.columns if c == "case" or design[c].std(ddof=0) > 0 or c == "intercept"]
    Xd = design[dcols].to_numpy(float)
    kd = dcols.index("case")
    folds = _folds(values, case, n_folds, seed)
    fold_of = np.zeros(n, int)
    for f, (_, te) in enumerate(folds, 1):
        fold_of[te] = f
    site_lab = (sites.reindex(values.index).astype(str).to_numpy() if sites is not None else np.full(n, ""))
    blocks = np.array([f"{f}|{s}" for f, s in zip(fold_of, site_lab)])
    perms = np.vstack([np.arange(n)[None, :], block_permutations(blocks, n_perm, seed + 1)])
    labels = case[perms]                                       # (n_perm + 1, n)

    # label-free parts per fold: training inverse-normal values, held-out inverse-normal values
    parts = []
    whole = external_ep is not None and combat_covars is None
    for tr, te in folds:
        itr, ite = values.index[tr], values.index[te]
        vtr, vte = values.loc[itr], values.loc[ite]
        if combat_covars is not None:
            from rviflow.cohort import harmonize

            model, vtr = harmonize.fit_combat(raw.loc[itr], combat_covars, min_per_site, what=measure)
            vte = harmonize.apply_combat(model, raw.loc[ite], combat_covars, what=measure)
        norm, z_tr = fit_normaliser(vtr, cov.loc[itr], ~case[tr], sites, within_site, measure)
        inv_tr = z_tr.to_numpy() * norm.control_sd + norm.control_mean
        plain = Normaliser(norm.regions, norm.design_columns, norm.betas, norm.ref_residuals,
                           np.zeros(len(norm.regions)), np.ones(len(norm.regions)), norm.within_site)
        inv_te = apply_normaliser(plain, vte, cov.loc[ite], sites, measure).to_numpy()
        Xtr = design.loc[itr, dcols]
        keep = (Xtr.std(ddof=0) > 0).to_numpy() | np.isin(dcols, ["intercept", "case"])
        parts.append((tr, te, inv_tr, inv_te, vtr.to_numpy(float), Xtr.to_numpy(float)[:, keep],
                      list(np.array(dcols)[keep]).index("case")))
    if whole:
        norm_all, z_all = fit_normaliser(values, cov, ~case, sites, within_site, measure)
        inv_all = z_all.to_numpy() * norm_all.control_sd + norm_all.control_mean

    regions = list(values.columns)
    ext = external_ep.reindex(regions).to_numpy(float) if external_ep is not None else None
    out = np.empty((len(perms), len(COLUMNS)))
    for i, lab in enumerate(labels):
        rvi = np.empty(n)
        single = np.empty(n)
        for tr, te, inv_tr, inv_te, ytr, xtr, k in parts:
            ctrl = ~lab[tr]
            mean, sd = np.nanmean(inv_tr[ctrl], 0), np.nanstd(inv_tr[ctrl], 0, ddof=1)
            z = (inv_te - mean) / sd
            xtr = xtr.copy()
            xtr[:, k] = lab[tr]
            if np.isnan(ytr).any():
                from rviflow.cohort.rvi import cohort_expected_pattern

                ep = cohort_expected_pattern(pd.DataFrame(ytr, columns=regions),
                                             pd.DataFrame(xtr).rename(columns={k: "case"}).assign(intercept=1.0),
                                             measure, 1).to_numpy()
            else:
                ep = adjusted_d(ytr, xtr, k)
            best = int(np.argmax(np.abs(ep)))
            single[te] = z[:, best] * np.sign(ep[best])
            if not whole:
                rvi[te] = _rvi(z, ep if external_ep is None else ext, regions)
        if whole:
            mean, sd = np.nanmean(inv_all[~lab], 0), np.nanstd(inv_all[~lab], 0, ddof=1)
            rvi = rvi_scores(pd.DataFrame((inv_all - mean) / sd, columns=regions), external_ep)["rvi"].to_numpy()
        x = Xd.copy()
        x[:, kd] = lab
        diff, var = delong_paired_var(rvi, single, lab)
        out[i] = (_auc(rvi, lab), _auc(single, lab), _rvi_d(rvi, x, kd), diff, var, auc_delong(rvi, lab)[1])
    return pd.DataFrame(out, columns=list(COLUMNS))


def delong_paired_var(s1: np.ndarray, s2: np.ndarray, is_case: np.ndarray) -> tuple[float, float]:
    """(AUC1 - AUC2, its DeLong variance) as :func:`rviflow.cohort.discrimination.delong_paired` computes them."""
    from rviflow.cohort.discrimination import _midrank_components

    comps = [_midrank_components(s[is_case], s[~is_case]) for s in (s1, s2)]
    cov = np.cov(np.vstack([c[1] for c in comps])) / is_case.sum() + np.cov(np.vstack([c[2] for c in comps])) / (~is_case).sum()
    return comps[0][0] - comps[1][0], float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])


def permutation_p(null: pd.DataFrame) -> dict[str, float]:
    """Two-sided permutation p of each statistic: row 0 observed against rows 1..; AUCs around
    0.5 by the tails of the permutation distribution (not assumed centred), d likewise.

    ``auc_rvi_minus_best_region`` tests equal AUCs, which label permutation does not; its paired
    DeLong z uses the DeLong variance times the inflation the fold dependence causes,
    F = var(diff over permutations) / mean(DeLong variance over permutations) (at least 1), an
    approximation (measured in tests/cohort/test_calibration_cohort.py)."""
    from scipy import stats

    from rviflow.cohort.coloc import two_sided_perm_p

    out = {s: two_sided_perm_p(float(null[s].iloc[0]), null[s].iloc[1:].to_numpy()) for s in STATISTICS}
    if "auc_diff" in null.columns:
        perm = null.iloc[1:]
        factor = max(1.0, float(perm["auc_diff"].var(ddof=1) / perm["var_delong_diff"].mean()))
        var = float(null["var_delong_diff"].iloc[0]) * factor
        diff = float(null["auc_diff"].iloc[0])
        out["auc_rvi_minus_best_region"] = float(2 * stats.norm.sf(abs(diff) / np.sqrt(var))) if var > 0 else 1.0
        out["auc_inflation"] = max(1.0, float(perm["auc_rvi"].var(ddof=1) / perm["var_delong_rvi"].mean()))
    return out
