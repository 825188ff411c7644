"""Longitudinal (pre / post) design: paired regional change, change vs symptom change, and
baseline measures predicting the symptom response.

Every subject has a baseline and (for most) a follow-up session; per region the change is
follow-up - baseline (measure units). Per-session variables (symptom scores at each visit) come
from BIDS ``sub-<label>_sessions.tsv`` or a long table (participant_id, session, ...;
:mod:`rviflow.io.sessions`).

- :func:`paired_change`: per group and region the mean change with its 95% CI and the paired t
  test's p, d_z = mean change / SD of the change, BH q over regions. Covariates and site are not
  in this within-group test: a site's offset cancels in a change, and a mean adjusted for centred
  covariates tests the change at the sample's covariate means, a conditional null whose p is
  anti-conservative for the population's mean change whenever the covariates act on the change
  (tests/cohort/test_calibration_designs.py measured 9% at 0.05). With cases and controls scanned twice,
  ``<case>-<control>`` rows test the difference of their changes with covariates and site
  (``change ~ case + covariates + site``; d_z = difference / residual SD).
- :func:`change_associations`: partial r of each region's change with the symptom change
  (follow-up - baseline score) within a group, covariates and site partialled
  (:func:`rviflow.cohort.associations.partial_association`).
- :func:`predict_response`: nested cross-validated ridge / linear SVR from the baseline regional
  values to the response (baseline - follow-up score, absolute or percent of baseline); out-of-fold
  Pearson r; permutation p with the whole nested cross-validation (covariate regression,
  scaling, the inner search) repeated on every permuted response, permuted within site.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from rviflow.cohort.associations import fdr, labelled_association, nuisance_design, partial_association
from rviflow.errors import InputError
from rviflow.cohort.permutation import within_block_permutations

CHANGE_COLUMNS = ["measure", "region", "group", "n", "mean_baseline", "mean_followup", "change", "ci_low", "ci_high",
                  "d_z", "t", "p", "q_fdr"]
CHANGE_ASSOCIATION_COLUMNS = ["measure", "region", "symptom", "group", "n", "beta", "r_partial", "ci_low", "ci_high",
                              "p", "q_fdr"]
RESPONSE_COLUMNS = ["features", "model", "target", "response", "n", "n_features", "r", "ci_low", "ci_high", "p_perm",
                    "n_perm", "mae", "outer_folds", "inner_folds"]
MODELS = ("ridge", "svr")
#: fewest subjects with both sessions for a group's change rows
MIN_N = 5


def _mean_change(D: np.ndarray) -> dict[str, np.ndarray]:
    """Paired t statistics per column of D (n, m) = follow-up - baseline: mean change, its SE
    (SD / sqrt n), dof n - 1, d_z = mean / SD; each column on its subjects with a value."""
    present = np.isfinite(D)
    n = present.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(D, 0) / n
        sd = np.sqrt(np.nansum((D - mean) ** 2, 0) / (n - 1))
        ok = n >= 3
        return dict(n=n, change=np.where(ok, mean, np.nan), se=np.where(ok, sd / np.sqrt(n), np.nan),
                    dof=np.where(ok, n - 1.0, np.nan), d_z=np.where(ok, mean / sd, np.nan))


def paired_change(baseline: pd.DataFrame, followup: pd.DataFrame, participants: pd.DataFrame, measure: str,
                  group_column: str, groups: dict[str, str], covariates: list[str], site_column: str | None,
                  min_n: int = MIN_N) -> pd.DataFrame:
    """:data:`CHANGE_COLUMNS` per group (and case-control difference) and region.

    Parameters
    ----------
    baseline, followup : DataFrame subjects x regions (measure units), indexed by participant_id;
        only subjects in both enter
    participants : participant_id, the group column, covariates, site
    groups : {"case": label, "control": label} (config ``groups``)
    min_n : a group with fewer subjects with both sessions gets no rows (the difference row needs
        both groups)
    """
    ids = baseline.index.intersection(followup.index)
    regions = list(baseline.columns)
    base = baseline.loc[ids, regions]
    D = followup.loc[ids, regions] - base
    Znuis = nuisance_design(participants, covariates, site_column)
    label = participants.set_index("participant_id")[group_column].astype(str)
    rows = []
    done = {}
    for role in ("case", "control"):
        who = [i for i in ids if i in Znuis.index and label.get(i) == groups[role]]
        if len(who) < min_n:
            continue
        res = _mean_change(D.loc[who].to_numpy(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            t = res["change"] / res["se"]
        half = stats.t.ppf(0.975, np.where(np.isfinite(res["dof"]), res["dof"], 1)) * res["se"]
        done[role] = who
        rows.append(pd.DataFrame(dict(
            measure=measure, region=regions, group=groups[role], n=res["n"],
            mean_baseline=base.loc[who].mean().to_numpy(), mean_followup=followup.loc[who, regions].mean().to_numpy(),
            change=res["change"], ci_low=res["change"] - half, ci_high=res["change"] + half, d_z=res["d_z"], t=t,
            p=2 * stats.t.sf(np.abs(t), np.where(np.isfinite(res["dof"]), res["dof"], 1)))))
    if len(done) == 2:  # difference of the changes: change ~ case + covariates + site
        who = done["case"] + done["control"]
        x = np.array([1.0] * len(done["case"]) + [0.0] * len(done["control"]))
        res = partial_association(D.loc[who].to_numpy(float), x, Znuis.loc[who].to_numpy(float), min_n=2 * min_n)
        dof = res["dof"].to_numpy(float)
        half = stats.t.ppf(0.975, np.where(np.isfinite(dof), dof, 1)) * res["se"].to_numpy()
        resid_sd = res["se"].to_numpy() * np.sqrt(res["sxx"].to_numpy())
        rows.append(pd.DataFrame(dict(
            measure=measure, region=regions, group=f"{groups['case']}-{groups['control']}", n=res["n"],
            mean_baseline=np.nan, mean_followup=np.nan, change=res["beta"], ci_low=res["beta"] - half,
            ci_high=res["beta"] + half, d_z=res["beta"] / resid_sd, t=res["beta"] / res["se"], p=res["p"])))
    if not rows:
        raise InputError(f"{measure}: fewer than {min_n} subjects with both sessions in every group; no change to test")
    out = pd.concat(rows, ignore_index=True)
    out["q_fdr"] = out.groupby("group", sort=False)["p"].transform(lambda p: fdr(p.to_numpy()))
    return out[CHANGE_COLUMNS]


def change_associations(baseline: pd.DataFrame, followup: pd.DataFrame, symptom_change: pd.DataFrame,
                        participants: pd.DataFrame, measure: str, group_column: str, group_labels: list[str],
                        covariates: list[str], site_column: str | None) -> pd.DataFrame:
    """:data:`CHANGE_ASSOCIATION_COLUMNS`: partial r of regional change with each symptom change.

    ``symptom_change``: subjects x symptoms (follow-up - baseline score), indexed by participant_id;
    NaN = left out of that symptom. ``group_labels``: the groups analysed (each its own rows).
    """
    ids = baseline.index.intersection(followup.index)
    D = followup.loc[ids] - baseline.loc[ids, followup.columns]
    Z = nuisance_design(participants, covariates, site_column)
    label = participants.set_index("participant_id")[group_column].astype(str)
    rows = []
    for g in group_labels:
        for sym in symptom_change.columns:
            x = symptom_change[sym].dropna()
            who = [i for i in ids if label.get(i) == g and i in x.index and i in Z.index]
            if len(who) < MIN_N:
                continue
            rows.append(labelled_association(D.loc[who], x.loc[who], Z.loc[who], MIN_N, measure,
                                             ("symptom", f"delta_{sym}"), g))
    if not rows:
        return pd.DataFrame(columns=CHANGE_ASSOCIATION_COLUMNS)
    return pd.concat(rows, ignore_index=True)[CHANGE_ASSOCIATION_COLUMNS]


def response(baseline_score: pd.Series, followup_score: pd.Series, kind: str = "percent") -> pd.Series:
    """Symptom response: baseline - follow-up (``absolute``, score points) or 100 x that / baseline
    (``percent``; subjects with a baseline score of 0 are left out, NaN). Positive = improvement."""
    ids = baseline_score.dropna().index.intersection(followup_score.dropna().index)
    b, f = baseline_score.loc[ids].astype(float), followup_score.loc[ids].astype(float)
    if kind == "absolute":
        return b - f
    if kind == "percent":
        return (100.0 * (b - f) / b.where(b != 0)).dropna()
    raise InputError(f"design.response.kind {kind!r} is not one of percent, absolute")


class ResidualiseCovariates:
    """scikit-learn transformer: regress the last ``n_covariates`` columns out of the other
    columns (least squares with intercept fitted on the training subjects only) and drop them.

    Written here because scikit-learn has no confound-regression transformer; inside a Pipeline
    the betas are learnt from each training fold, so no held-out subject informs them.
    """

    def __init__(self, n_covariates: int = 0):
        self.n_covariates = n_covariates

    def get_params(self, deep=True):
        return {"n_covariates": self.n_covariates}

    def set_params(self, **params):
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def _split(self, X):
        X = np.asarray(X, float)
        k = self.n_covariates
        return (X, None) if k == 0 else (X[:, :-k], np.c_[np.ones(len(X)), X[:, -k:]])

    def fit(self, X, y=None):
        F, C = self._split(X)
        self.beta_ = None if C is None else np.linalg.lstsq(C, F, rcond=None)[0]
        return self

    def transform(self, X):
        F, C = self._split(X)
        return F if C is None else F - C @ self.beta_

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)


RIDGE_ALPHAS = np.logspace(-2, 5, 15)
SVR_C = (0.001, 0.01, 0.1, 1.0)


def _svr(n_covariates: int, inner_folds: int, seed: int):
    """Linear SVR in a pipeline (covariates regressed, standardised on the training fold), C by
    an inner K-fold grid search on the training subjects only."""
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    steps = [("covariates", ResidualiseCovariates(n_covariates)), ("scale", StandardScaler()),
             ("model", SVR(kernel="linear"))]
    return GridSearchCV(Pipeline(steps), {"model__C": list(SVR_C)}, cv=KFold(inner_folds, shuffle=True, random_state=seed),
                        scoring="neg_mean_absolute_error")


def ridge_reference(n_covariates: int):
    """scikit-learn's equivalent of :func:`_ridge_oof`'s model for one training fold: covariates
    regressed, standardised, RidgeCV over :data:`RIDGE_ALPHAS` by efficient leave-one-out."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("covariates", ResidualiseCovariates(n_covariates)), ("scale", StandardScaler()),
                     ("model", RidgeCV(alphas=RIDGE_ALPHAS))])


def _adjust_target(X: np.ndarray, Y: np.ndarray, n_covariates: int, tr: np.ndarray, te: np.ndarray):
    """Y of the training and test subjects with the covariates (the last ``n_covariates`` columns of
    X) regressed out by least squares fitted on the training subjects (every column of Y)."""
    if n_covariates == 0:
        return Y[tr], Y[te]
    C = np.c_[np.ones(len(X)), X[:, -n_covariates:]]
    beta = np.linalg.lstsq(C[tr], Y[tr], rcond=None)[0]
    return Y[tr] - C[tr] @ beta, Y[te] - C[te] @ beta


def _ridge_oof(X: np.ndarray, Y: np.ndarray, n_covariates: int, outer: list) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold ridge predictions of every column of Y (n, m) at once, and the targets they
    predict (Y, covariate-adjusted within each fold when there are covariates). The model is
    :func:`ridge_reference` (alpha per column and training fold by leave-one-out error, the
    hat-matrix shortcut, intercept unpenalised). Written by hand because the features are the same
    for every permuted response: one SVD per training fold serves all permutations, where
    scikit-learn would refit ~1000 pipelines (tests/cohort/test_longitudinal.py checks it equals
    scikit-learn's RidgeCV)."""
    pred, target = np.empty(Y.shape), np.empty(Y.shape)
    for tr, te in outer:
        res = ResidualiseCovariates(n_covariates).fit(X[tr])
        A, B = res.transform(X[tr]), res.transform(X[te])
        mu, sd = A.mean(0), A.std(0)
        sd[sd == 0] = 1.0
        A, B = (A - mu) / sd, (B - mu) / sd
        u, s, vt = np.linalg.svd(A, full_matrices=False)
        keep = s > 1e-10 * s.max()
        u, s, vt = u[:, keep], s[keep], vt[keep]
        Ytr, target[te] = _adjust_target(X, Y, n_covariates, tr, te)
        ymean = Ytr.mean(0)
        Yc = Ytr - ymean
        uty = u.T @ Yc                                            # (k, m)
        n = len(tr)
        best_err = np.full(Y.shape[1], np.inf)
        best_coef = np.zeros((A.shape[1], Y.shape[1]))
        for alpha in RIDGE_ALPHAS:
            f = s**2 / (s**2 + alpha)
            fitted = u @ (f[:, None] * uty)
            h = 1.0 / n + (u**2) @ f                               # hat diagonal, intercept included
            err = (((Yc - fitted) / (1 - h)[:, None]) ** 2).mean(0)
            better = err < best_err
            if better.any():
                best_err[better] = err[better]
                best_coef[:, better] = vt.T @ ((s / (s**2 + alpha))[:, None] * uty[:, better])
        pred[te] = ymean + B @ best_coef
    return pred, target


def _oof_predictions(X: np.ndarray, Y: np.ndarray, model: str, n_covariates: int, outer: list, inner_folds: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions (n, m) of every response column of Y (n, m), and their targets."""
    if model == "ridge":
        return _ridge_oof(X, Y, n_covariates, outer)
    if model != "svr":
        raise InputError(f"design.prediction.models: {model!r} is not one of {', '.join(MODELS)}")
    pred, target = np.empty(Y.shape), np.empty(Y.shape)
    for tr, te in outer:
        Ytr, target[te] = _adjust_target(X, Y, n_covariates, tr, te)
        for j in range(Y.shape[1]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred[te, j] = _svr(n_covariates, inner_folds, seed).fit(X[tr], Ytr[:, j]).predict(X[te])
    return pred, target


def _r(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(pred, y)[0, 1]) if np.std(pred) > 1e-12 and np.std(y) > 0 else 0.0


def predict_response(features: pd.DataFrame, target: pd.Series, covariates: pd.DataFrame | None = None,
                     sites: pd.Series | None = None, model: str = "ridge", outer_folds: int = 5,
                     inner_folds: int = 3, n_perm: int = 1000, seed: int = 0) -> dict:
    """Out-of-fold prediction of ``target`` from ``features`` (nested CV) and its permutation p.

    Parameters
    ----------
    features : subjects x regions (baseline values), indexed by participant_id; regions with a
        missing value in a subject with a response are left out
    target : the response per subject (subjects without one are left out)
    covariates : subjects x numeric nuisance columns (no intercept) regressed out of the features
        and of the target inside every training fold (betas from the training subjects, applied to
        the held-out ones); r is then that of the covariate-adjusted response. Adjusting the
        features alone is not enough: the residualised features of subjects sharing a site become
        anti-similar and a kernel-like model then anti-predicts a site-dependent response
        (r ~ -0.3 where the planted predictor gave +0.5 in the demo cohort). None = none.
    sites : exchangeability blocks of the permutation (the response is permuted within site)
    model : ``ridge`` (alpha chosen by leave-one-out error within the training fold; inner_folds
        unused) or ``svr`` (linear SVR, C by an inner K-fold grid search); features are
        standardised on the training fold, after the covariates are regressed out there

    Returns
    -------
    dict: n, n_features, r (Pearson r of out-of-fold predictions with the (adjusted) target), ci_low,
    ci_high (Fisher), p_perm = (1 + #{r_perm >= r}) / (1 + n_perm) (one-sided: a useful
    prediction has r > 0; 1.0 when n_perm is 0), mae, n_perm, outer_folds, inner_folds.
    """
    from sklearn.model_selection import KFold

    y = target.dropna()
    ids = y.index.intersection(features.index)
    if covariates is not None:
        ids = ids.intersection(covariates.dropna().index)
    X = features.loc[ids].dropna(axis=1)
    if covariates is not None:
        C = covariates.loc[ids]
        C = C.loc[:, C.std() > 0]
        X = pd.concat([X, C], axis=1)
        k = C.shape[1]
    else:
        k = 0
    y = y.loc[ids].to_numpy(float)
    n = len(y)
    if n < 2 * outer_folds or n < 10:
        raise InputError(f"response prediction: {n} subjects with a response and baseline data; at least "
                         f"{max(10, 2 * outer_folds)} are needed")
    Xa = X.to_numpy(float)
    outer = list(KFold(outer_folds, shuffle=True, random_state=seed).split(Xa))
    blocks = None if sites is None else sites.loc[ids].astype(str).to_numpy()
    perms = within_block_permutations(blocks, n, n_perm, seed=seed + 4242)
    Y = np.column_stack([y, *(y[p] for p in perms)])          # observed, then every permuted response
    pred, target = _oof_predictions(Xa, Y, model, k, outer, inner_folds, seed)
    rs = np.array([_r(pred[:, j], target[:, j]) for j in range(Y.shape[1])])
    r, null = rs[0], rs[1:]
    pred, y = pred[:, 0], target[:, 0]
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    se = 1 / np.sqrt(max(n - 3, 1))
    return dict(n=n, n_features=Xa.shape[1] - k, r=r, ci_low=float(np.tanh(z - 1.96 * se)),
                ci_high=float(np.tanh(z + 1.96 * se)),
                p_perm=float((1 + np.sum(null >= r)) / (1 + n_perm)) if n_perm else 1.0,
                n_perm=n_perm, mae=float(np.mean(np.abs(pred - y))), outer_folds=outer_folds, inner_folds=inner_folds)
