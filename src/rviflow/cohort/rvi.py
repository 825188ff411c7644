"""Regional vulnerability index (RVI) following Kochunov et al. (RVIpkg, CRAN R/RVI_func.R).

Per region: (1) regress the covariates out across all subjects (OLS; within each site when
``within_site``, else with site dummies in the design); (2) rank-based inverse-normal transform
of the residuals, qnorm(rank / (n + 1)); (3) z against the controls' mean and SD. A subject's
RVI is the Pearson correlation across regions between its z-vector and the expected pattern EP
(the disorder's case - control d per region, so a disorder-like subject has RVI > 0); the AVI is
the dot product sum_r z_r EP_r.

The EP is external (e.g. ``resources/enigma-mdd``: ENIGMA-MDD cortical thickness d) or derived
from the cohort. A cohort-derived EP must not see the subject it scores: in
:func:`cross_validated_rvi` the normalisation and the EP are fitted on the training folds and
applied to the held-out fold (:func:`apply_normaliser` places a new subject's residual in the
training residuals' ranks as if it had been added: rank / (n + 2)). :class:`Reference` bundles
the fitted models (ComBat, covariate betas, controls' mean / SD, EP) to score new subjects
without refitting.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from rviflow.cohort.effects import adjusted_d, effect_sizes
from rviflow.errors import InputError

ENIGMA_MDD_THICKNESS = Path(__file__).resolve().parents[3] / "resources" / "enigma-mdd" / "mddadult_case-controls_CortThick.csv"


def rank_inverse_normal(x: np.ndarray) -> np.ndarray:
    """Column-wise qnorm(rank / (n + 1)) with average ranks for ties; NaN stays NaN (n = values present)."""
    x = np.asarray(x, float)
    if not np.isnan(x).any():
        return stats.norm.ppf(stats.rankdata(x, axis=0) / (x.shape[0] + 1))
    out = np.full_like(x, np.nan)
    for j in range(x.shape[1]):
        ok = ~np.isnan(x[:, j])
        r = stats.rankdata(x[ok, j])
        out[ok, j] = stats.norm.ppf(r / (ok.sum() + 1))
    return out


def _residualise(Y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS residuals of every column of Y on X (missing values skipped per column); betas (p, R)."""
    miss = np.isnan(Y)
    beta = np.zeros((X.shape[1], Y.shape[1]))
    full = ~miss.any(0)
    if full.any():
        beta[:, full] = np.linalg.lstsq(X, Y[:, full], rcond=None)[0]
    for j in np.flatnonzero(~full):
        ok = ~miss[:, j]
        beta[:, j] = np.linalg.lstsq(X[ok], Y[ok, j], rcond=None)[0]
    return Y - X @ beta, beta


@dataclass
class Normaliser:
    """Fitted RVIpkg normalisation of one measure (what a frozen reference needs to z-score)."""

    regions: list[str]
    design_columns: list[str]
    betas: dict[str, np.ndarray]          # "all" or site label -> (p, R) covariate betas
    ref_residuals: list[np.ndarray]       # per region: sorted residuals of the fitting subjects
    control_mean: np.ndarray              # (R,) of the inverse-normal values of the controls
    control_sd: np.ndarray                # (R,)
    within_site: bool = False


def _groups(sites: pd.Series | None, index: pd.Index, within_site: bool) -> dict[str, np.ndarray]:
    if not within_site or sites is None:
        return {"all": np.ones(len(index), bool)}
    s = sites.reindex(index).astype(str).to_numpy()
    return {k: s == k for k in sorted(set(s))}


def fit_normaliser(
    values: pd.DataFrame, covariates: pd.DataFrame, is_control: np.ndarray, sites: pd.Series | None = None,
    within_site: bool = False, what: str = "",
) -> tuple[Normaliser, pd.DataFrame]:
    """RVIpkg steps 1-3 on ``values`` (subjects x regions); returns the model and the z table.

    ``covariates`` is the numeric design without the group (intercept, covariates, site dummies
    unless ``within_site``), indexed like ``values``; ``is_control`` a boolean array.
    """
    Y = values.to_numpy(float)
    X = covariates.loc[values.index].to_numpy(float)
    is_control = np.asarray(is_control, bool)
    if is_control.sum() < 2:
        raise InputError(f"{what}: fewer than 2 controls to z-score against")
    resid = np.full_like(Y, np.nan)
    betas = {}
    for key, rows in _groups(sites, values.index, within_site).items():
        if rows.sum() <= X.shape[1]:
            raise InputError(f"{what}: site {key!r} has {int(rows.sum())} subjects, too few to regress "
                             f"{X.shape[1]} covariate terms within the site")
        resid[rows], betas[key] = _residualise(Y[rows], X[rows])
    inv = rank_inverse_normal(resid)
    mean = np.nanmean(inv[is_control], axis=0)
    sd = np.nanstd(inv[is_control], axis=0, ddof=1)
    if (~(sd > 0)).any():
        raise InputError(f"{what} {values.columns[~(sd > 0)][0]}: no variation among the controls")
    srt = np.sort(resid, axis=0)  # NaN sort last
    counts = (~np.isnan(resid)).sum(0)
    norm = Normaliser(list(values.columns), list(covariates.columns), betas,
                      [srt[: counts[j], j].copy() for j in range(Y.shape[1])], mean, sd, within_site)
    return norm, pd.DataFrame((inv - mean) / sd, index=values.index, columns=values.columns)


def apply_normaliser(norm: Normaliser, values: pd.DataFrame, covariates: pd.DataFrame,
                     sites: pd.Series | None = None, what: str = "") -> pd.DataFrame:
    """z of new subjects against a fitted :class:`Normaliser`, without refitting anything."""
    missing = [r for r in norm.regions if r not in values.columns]
    if missing:
        raise InputError(f"{what}: region {missing[0]!r} of the reference is missing")
    extra = [c for c in covariates.columns if c not in norm.design_columns]
    if extra:
        raise InputError(f"{what}: covariate level {extra[0]!r} is not in the reference")
    X = covariates.reindex(columns=norm.design_columns, fill_value=0.0).loc[values.index].to_numpy(float)
    Y = values[norm.regions].to_numpy(float)
    resid = np.full_like(Y, np.nan)
    if norm.within_site:
        s = sites.reindex(values.index).astype(str).to_numpy()
        for key in sorted(set(s)):
            if key not in norm.betas:
                raise InputError(f"{what}: site {key!r} is not in the reference")
            rows = s == key
            resid[rows] = Y[rows] - X[rows] @ norm.betas[key]
    else:
        resid = Y - X @ norm.betas["all"]
    inv = np.full_like(Y, np.nan)
    for j, ref in enumerate(norm.ref_residuals):
        ok = ~np.isnan(resid[:, j])
        less = np.searchsorted(ref, resid[ok, j], side="left")
        equal = np.searchsorted(ref, resid[ok, j], side="right") - less
        inv[ok, j] = stats.norm.ppf((less + (equal + 2) / 2) / (ref.size + 2))
    return pd.DataFrame((inv - norm.control_mean) / norm.control_sd, index=values.index, columns=norm.regions)


def rvi_scores(z: pd.DataFrame, ep: pd.Series) -> pd.DataFrame:
    """RVI (Pearson r of z-vector and EP over the regions both have) and AVI (sum z * EP) per subject."""
    regions = [r for r in ep.index if r in z.columns and np.isfinite(ep[r])]
    if len(regions) < 3:
        raise InputError(f"the expected pattern shares {len(regions)} regions with the data; RVI needs at least 3")
    Z = z[regions].to_numpy(float)
    E = np.broadcast_to(ep[regions].to_numpy(float), Z.shape)
    m = ~np.isnan(Z)
    n = m.sum(1)
    Zc = np.where(m, Z, 0.0)
    Ec = np.where(m, E, 0.0)
    zc = np.where(m, Z - Zc.sum(1, keepdims=True) / np.maximum(n, 1)[:, None], 0.0)
    ec = np.where(m, E - Ec.sum(1, keepdims=True) / np.maximum(n, 1)[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (zc * ec).sum(1) / np.sqrt((zc**2).sum(1) * (ec**2).sum(1))
    r[n < 3] = np.nan
    return pd.DataFrame({"rvi": r, "avi": (Zc * Ec).sum(1)}, index=z.index)


def read_expected_pattern(path: str | Path) -> pd.Series:
    """An EP file as Series (region -> d): an rviflow group/expected_pattern_<measure>.tsv
    (region, d) or an ENIGMA summary-statistics CSV (Structure, d_icv)."""
    path = Path(path)
    df = pd.read_csv(path, sep="," if path.suffix == ".csv" else "\t")
    for rcol, dcol in (("region", "d"), ("Structure", "d_icv")):
        if {rcol, dcol} <= set(df.columns):
            return pd.Series(df[dcol].to_numpy(float), index=df[rcol].astype(str), name="ep")
    raise InputError("an expected pattern needs columns region + d (rviflow) or Structure + d_icv (ENIGMA)",
                     path=str(path))


def cohort_expected_pattern(values: pd.DataFrame, design: pd.DataFrame, measure: str, min_per_group: int) -> pd.Series:
    """Case - control adjusted d per region (the EP), vectorised when no value is missing."""
    X = design.loc[values.index]
    X = X.loc[:, X.std(ddof=0).gt(0) | X.columns.isin(["intercept", "case"])]
    n1 = int(X["case"].sum())
    if min(n1, len(X) - n1) < min_per_group:
        raise InputError(f"{measure}: {n1} cases and {len(X) - n1} controls in a training fold; at least "
                         f"{min_per_group} of each are needed for an expected pattern (fewer folds?)")
    if values.notna().all().all():
        d = adjusted_d(values.to_numpy(float), X.to_numpy(float), list(X.columns).index("case"))
        return pd.Series(d, index=values.columns, name="ep")
    return effect_sizes(values, X, measure, min_per_group).set_index("region")["d"].rename("ep")


def covariate_design(design: pd.DataFrame, site_column: str | None, within_site: bool) -> pd.DataFrame:
    """The RVI regression design: :func:`design_matrix` without the group (and without site
    dummies when regressing within site)."""
    cols = [c for c in design.columns if c != "case"
            and not (within_site and site_column and str(c).startswith(f"{site_column}_"))]
    return design[cols]


def cross_validated_rvi(
    values: pd.DataFrame, design: pd.DataFrame, measure: str, n_folds: int = 5, seed: int = 0,
    sites: pd.Series | None = None, site_column: str | None = None, within_site: bool = False,
    min_per_group: int = 3, external_ep: pd.Series | None = None, raw: pd.DataFrame | None = None,
    combat_covars: pd.DataFrame | None = None, min_per_site: int = 2,
) -> pd.DataFrame:
    """Out-of-fold RVI / AVI of every subject, and the best single region chosen in the same folds.

    In each of ``n_folds`` stratified folds the normalisation and (unless ``external_ep``) the EP
    are fitted on the other folds only. With an external EP and no ``raw`` the RVI follows RVIpkg
    on the whole cohort (fold 0: the EP is not learnt from these labels); the single-region
    baseline is still chosen in folds (the region with the largest training |d|, its z signed by
    that d).

    ``raw`` and ``combat_covars`` (:func:`rviflow.cohort.harmonize.combat_covariates` without the case
    column) harmonise inside the folds: ComBat is fitted on each fold's training subjects of
    ``raw`` and applied to its held-out subjects, as in :mod:`rviflow.cohort.predict`, so neither the EP
    nor the site adjustment sees a scored subject or its label (a whole-cohort ComBat preserving
    diagnosis would). This holds for an external EP too: its RVI is then scored out of fold
    (folds 1..k) on the fold-harmonised values, and ``values`` (e.g. harmonised on the whole
    cohort with diagnosis preserved) are not used for any score.

    Returns
    -------
    DataFrame indexed by participant_id: rvi, avi, fold, single_region, best_region
    """
    from sklearn.model_selection import StratifiedKFold

    design = design.loc[values.index]
    case = design["case"].to_numpy() == 1
    n_min = int(min(case.sum(), (~case).sum()))
    if n_min < 2:
        raise InputError(f"{measure}: {int(case.sum())} cases and {int((~case).sum())} controls; RVI needs at least 2 of each")
    k = min(n_folds, n_min)
    cov = covariate_design(design, site_column, within_site)
    out = pd.DataFrame(index=values.index, columns=["rvi", "avi", "fold", "single_region", "best_region"], dtype=object)
    if external_ep is not None and combat_covars is None:
        _, z = fit_normaliser(values, cov, ~case, sites, within_site, measure)
        out[["rvi", "avi"]] = rvi_scores(z, external_ep).to_numpy()
        out["fold"] = 0
    for fold, (tr, te) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(values, case), 1):
        itr, ite = values.index[tr], values.index[te]
        what = f"{measure} fold {fold}"
        vtr, vte = values.loc[itr], values.loc[ite]
        if combat_covars is not None:
            from rviflow.cohort import harmonize

            model, vtr = harmonize.fit_combat(raw.loc[itr], combat_covars, min_per_site, what=what)
            vte = harmonize.apply_combat(model, raw.loc[ite], combat_covars, what=what)
        norm, _ = fit_normaliser(vtr, cov.loc[itr], ~case[tr], sites, within_site, what)
        ep = cohort_expected_pattern(vtr, design.loc[itr], measure, min_per_group)
        z = apply_normaliser(norm, vte, cov.loc[ite], sites, what)
        if external_ep is None or combat_covars is not None:
            out.loc[ite, ["rvi", "avi"]] = rvi_scores(z, ep if external_ep is None else external_ep).to_numpy()
            out.loc[ite, "fold"] = fold
        best = ep.abs().idxmax()
        out.loc[ite, "single_region"] = (z[best] * np.sign(ep[best])).to_numpy()
        out.loc[ite, "best_region"] = best
    for c in ("rvi", "avi", "single_region"):
        out[c] = out[c].astype(float)
    out["fold"] = out["fold"].astype(int)
    return out


@dataclass
class Reference:
    """A frozen cohort reference for one measure: score new subjects without refitting."""

    measure: str
    normaliser: Normaliser
    ep: pd.Series
    combat: dict | None = None
    site_column: str | None = None
    meta: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        from rviflow.io.bids import save_pickle

        save_pickle(self, path)

    @staticmethod
    def load(path: str | Path) -> "Reference":
        with open(path, "rb") as fh:
            ref = pickle.load(fh)
        if not isinstance(ref, Reference):
            raise InputError("not an rviflow reference (group/models/reference_<measure>.pkl)", path=str(path))
        return ref


def fit_reference(values: pd.DataFrame, design: pd.DataFrame, measure: str, ep: pd.Series,
                  sites: pd.Series | None = None, site_column: str | None = None, within_site: bool = False,
                  combat: dict | None = None) -> Reference:
    """The whole cohort's normalisation + an EP (+ the ComBat model the values went through)."""
    cov = covariate_design(design.loc[values.index], site_column, within_site)
    norm, _ = fit_normaliser(values, cov, design.loc[values.index, "case"].to_numpy() == 0, sites, within_site, measure)
    return Reference(measure, norm, ep, combat, site_column, dict(n_subjects=len(values), within_site=within_site))


def score_with_reference(ref: Reference, values: pd.DataFrame, design: pd.DataFrame,
                         sites: pd.Series | None = None, combat_covars: pd.DataFrame | None = None) -> pd.DataFrame:
    """RVI / AVI of new subjects against a frozen :class:`Reference` (ComBat applied first if it has one).

    The scores of one subject do not depend on which other subjects are scored with it.
    """
    if ref.combat is not None:
        from rviflow.cohort.harmonize import apply_combat

        values = apply_combat(ref.combat, values, combat_covars, ref.measure)
    cov = covariate_design(design.loc[values.index], ref.site_column, ref.normaliser.within_site)
    z = apply_normaliser(ref.normaliser, values, cov, sites, ref.measure)
    return rvi_scores(z, ref.ep)
