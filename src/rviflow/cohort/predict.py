"""Nested cross-validated prediction from regional features (scikit-learn).

Diagnosis: L2-regularised logistic regression and a linear SVM; a symptom score (within
patients): linear SVR. Outer folds estimate performance out of fold; inner folds (GridSearchCV
over C) pick the regularisation. Everything learnt from data is fitted on the outer training
subjects only: missing-value fill (training means), ComBat (neuroHarmonize; site with the
covariates preserved, never the label, because applying it to test subjects would need theirs)
and the scaling (StandardScaler inside the inner pipeline).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from rviflow.cohort.discrimination import auc_ci, auc_delong
from rviflow.errors import InputError

PREDICTION_COLUMNS = ["features", "model", "target", "metric", "estimate", "ci_low", "ci_high", "n",
                      "n_outer_folds", "harmonized"]
C_GRID = (0.001, 0.01, 0.1, 1.0)


def feature_table(values: dict[str, pd.DataFrame], measures: list[str]) -> pd.DataFrame:
    """Regional features of ``measures`` side by side (columns measure:region), subjects with all."""
    parts = [values[m].add_prefix(f"{m}:") for m in measures]
    out = pd.concat(parts, axis=1, join="inner")
    return out.loc[:, out.notna().any()]


def _fold_features(X: pd.DataFrame, tr: np.ndarray, te: np.ndarray, covars: pd.DataFrame | None,
                   min_per_site: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Training-fold fill + ComBat, applied to the test fold."""
    Xtr, Xte = X.iloc[tr], X.iloc[te]
    mean = Xtr.mean()
    Xtr, Xte = Xtr.fillna(mean), Xte.fillna(mean)
    if covars is not None:
        from rviflow.cohort.harmonize import apply_combat, fit_combat

        model, Xtr = fit_combat(Xtr, covars.loc[Xtr.index], min_per_site, what=what)
        Xte = apply_combat(model, Xte, covars.loc[Xte.index], what=what)
    return Xtr.to_numpy(float), Xte.to_numpy(float)


def _search(estimator, inner, scoring, seed):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return GridSearchCV(Pipeline([("scale", StandardScaler()), ("model", estimator)]),
                        {"model__C": list(C_GRID)}, cv=inner, scoring=scoring, n_jobs=1)


def classify(X: pd.DataFrame, is_case: pd.Series, covars: pd.DataFrame | None, name: str, n_outer: int = 5,
             n_inner: int = 3, seed: int = 0, min_per_site: int = 2) -> list[dict]:
    """Out-of-fold AUC (DeLong CI) and balanced accuracy of both classifiers on features ``X``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import LinearSVC

    y = is_case.loc[X.index].to_numpy(bool)
    k = min(n_outer, int(y.sum()), int((~y).sum()))
    if k < 2:
        raise InputError(f"prediction {name}: {int(y.sum())} cases and {int((~y).sum())} controls; too few to cross-validate")
    models = {"logistic_l2": LogisticRegression(max_iter=2000),
              "linear_svm": LinearSVC(max_iter=20000)}
    score = {m: np.full(len(y), np.nan) for m in models}
    label = {m: np.zeros(len(y), bool) for m in models}
    outer = StratifiedKFold(k, shuffle=True, random_state=seed)
    for fold, (tr, te) in enumerate(outer.split(X, y), 1):
        Xtr, Xte = _fold_features(X, tr, te, covars, min_per_site, f"prediction {name} outer fold {fold}")
        ki = min(n_inner, int(y[tr].sum()), int((~y[tr]).sum()))
        inner = StratifiedKFold(max(ki, 2), shuffle=True, random_state=seed)
        for m, est in models.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                search = _search(est, inner, "roc_auc", seed).fit(Xtr, y[tr])
            score[m][te] = search.decision_function(Xte)
            label[m][te] = search.predict(Xte)
    rows = []
    for m in models:
        auc, var = auc_delong(score[m], y)
        lo, hi = auc_ci(auc, var)
        base = dict(features=name, model=m, target="diagnosis", n=len(y), n_outer_folds=k, harmonized=covars is not None)
        rows.append({**base, "metric": "auc", "estimate": auc, "ci_low": lo, "ci_high": hi})
        rows.append({**base, "metric": "balanced_accuracy", "estimate": balanced_accuracy_score(y, label[m]),
                     "ci_low": np.nan, "ci_high": np.nan})
    return rows


def regress_symptom(X: pd.DataFrame, score: pd.Series, sites: pd.Series | None, covars: pd.DataFrame | None,
                    name: str, symptom: str, n_outer: int = 5, n_inner: int = 3, seed: int = 0,
                    min_per_site: int = 2) -> list[dict]:
    """Out-of-fold r (Fisher CI) and MAE of a linear SVR predicting ``score`` (patients with a score)."""
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.svm import SVR

    X = X.loc[score.dropna().index.intersection(X.index)]
    y = score.loc[X.index].to_numpy(float)
    if len(y) < 8:
        raise InputError(f"prediction {name} -> {symptom}: {len(y)} patients with a score; at least 8 are needed")
    k = min(n_outer, len(y) // 2)
    if sites is not None and covars is not None and sites.loc[X.index].value_counts().min() >= k:
        splits = StratifiedKFold(k, shuffle=True, random_state=seed).split(X, sites.loc[X.index].astype(str))
    else:
        splits = KFold(k, shuffle=True, random_state=seed).split(X)
    pred = np.full(len(y), np.nan)
    for fold, (tr, te) in enumerate(splits, 1):
        Xtr, Xte = _fold_features(X, tr, te, covars, min_per_site, f"prediction {name} -> {symptom} fold {fold}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            search = _search(SVR(kernel="linear"), KFold(n_inner, shuffle=True, random_state=seed),
                             "neg_mean_absolute_error", seed).fit(Xtr, y[tr])
        pred[te] = search.predict(Xte)
    r = stats.pearsonr(pred, y)[0] if np.std(pred) > 0 else 0.0
    se = 1 / np.sqrt(max(len(y) - 3, 1))
    base = dict(features=name, model="linear_svr", target=symptom, n=len(y), n_outer_folds=k,
                harmonized=covars is not None)
    return [{**base, "metric": "r", "estimate": r, "ci_low": np.tanh(np.arctanh(np.clip(r, -0.999, 0.999)) - 1.96 * se),
             "ci_high": np.tanh(np.arctanh(np.clip(r, -0.999, 0.999)) + 1.96 * se)},
            {**base, "metric": "mae", "estimate": float(np.mean(np.abs(pred - y))), "ci_low": np.nan, "ci_high": np.nan}]


def prediction_table(values: dict[str, pd.DataFrame], design: pd.DataFrame, sites: pd.Series | None,
                     covars: pd.DataFrame | None, symptoms: pd.DataFrame | None, n_outer: int = 5, n_inner: int = 3,
                     seed: int = 0) -> pd.DataFrame:
    """Every measure alone and all combined: diagnosis classifiers, and SVR for each symptom column.

    ``covars`` (ComBat covariates with SITE, see :func:`rviflow.cohort.harmonize.combat_covariates`, without
    the case column) switches harmonisation inside the folds on; None = off.
    """
    sets = {m: [m] for m in values}
    if len(values) > 1:
        sets["combined"] = list(values)
    is_case = design["case"] == 1
    rows = []
    for name, ms in sets.items():
        X = feature_table(values, ms)
        X = X.loc[X.index.intersection(design.index)]
        rows += classify(X, is_case, covars, name, n_outer, n_inner, seed)
        if symptoms is not None:
            for sym in symptoms.columns:
                pts = is_case[is_case].index.intersection(X.index)
                rows += regress_symptom(X.loc[pts], symptoms.loc[pts, sym], sites, covars, name, sym,
                                        n_outer, n_inner, seed)
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)
