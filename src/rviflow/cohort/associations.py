"""Region-level association of a regional measure with a continuous participant variable.

For every region r of a measure, within the analysed group(s), the linear model

    value_r = b0 + beta * variable + covariates + site dummies + e

is fitted by ordinary least squares on the subjects with a value, the variable and every
covariate. ``beta`` is the variable's slope (measure units per variable unit), ``r_partial`` the
partial correlation of value and variable given the nuisance terms (intercept, covariates,
site), p its t test on n - p - 1 degrees of freedom (identical to the OLS t test of beta), the
95% CI the Fisher-z interval with SE 1 / sqrt(n - p - 2) (p nuisance columns), and q the
Benjamini-Hochberg FDR over the regions of one (measure, variable, group).

All regions with the same subjects are fitted at once (one projection per missing-value
pattern); the numbers equal statsmodels' OLS per region (tests/cohort/test_longitudinal.py). Written
with numpy because statsmodels fits one response per call and the partial r is not among its
outputs; the multiple-testing correction is statsmodels'.

The same function gives the longitudinal design's change-vs-symptom-change table
(:mod:`rviflow.cohort.longitudinal`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from rviflow.errors import InputError

ASSOCIATION_COLUMNS = ["measure", "region", "variable", "group", "n", "beta", "r_partial", "ci_low", "ci_high",
                       "p", "q_fdr"]
#: fewest subjects with data for a region's association (else n/a)
MIN_N = 8


def partial_association(values: np.ndarray, x: np.ndarray, nuisance: np.ndarray, min_n: int = MIN_N) -> pd.DataFrame:
    """Slope, partial r, Fisher CI and t-test p of ``x`` for every column of ``values``.

    Parameters
    ----------
    values : (n_subjects, n_regions) float array, NaN = no value
    x : (n_subjects,) the variable (no NaN: leave such subjects out before)
    nuisance : (n_subjects, p) nuisance design with an intercept column (no NaN)
    min_n : fewer subjects with a value than this (or no residual dof) gives NaN

    Returns
    -------
    DataFrame, one row per column of ``values``: n, beta, r_partial, ci_low, ci_high, p, and
    se (of beta), dof (residual degrees of freedom), sxx (the variable's residual sum of squares)
    """
    Y = np.asarray(values, float)
    x = np.asarray(x, float)
    Z = np.asarray(nuisance, float)
    n_reg = Y.shape[1]
    out = {k: np.full(n_reg, np.nan) for k in ("beta", "r_partial", "ci_low", "ci_high", "p", "se", "dof", "sxx")}
    out["n"] = np.zeros(n_reg, int)
    present = np.isfinite(Y)
    patterns, which = np.unique(present.T, axis=0, return_inverse=True)
    for j, ok in enumerate(patterns):
        cols = np.flatnonzero(which.ravel() == j)
        n = int(ok.sum())
        out["n"][cols] = n
        Zk = Z[ok]
        # a site or category level without a subject here would make the nuisance design singular
        Zk = Zk[:, (Zk.std(0) > 0) | np.all(Zk == 1, axis=0)]
        rank = np.linalg.matrix_rank(Zk) if n else 0
        dof = n - rank - 1
        if n < min_n or dof < 2:
            continue
        q, _ = np.linalg.qr(Zk)
        q = q[:, :rank] if rank < q.shape[1] else q
        ry = Y[np.ix_(ok, cols)]
        ry = ry - q @ (q.T @ ry)
        rx = x[ok] - q @ (q.T @ x[ok])
        sxx = float(rx @ rx)
        syy = (ry**2).sum(0)
        if sxx <= 1e-12 * max(float(x[ok] @ x[ok]), 1e-300):
            continue  # the variable is constant given the nuisance terms
        sxy = rx @ ry
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(syy > 0, sxy / np.sqrt(sxx * syy), np.nan)
            t = r * np.sqrt(dof / np.maximum(1 - r**2, 1e-300))
        z = np.arctanh(np.clip(r, -0.999999, 0.999999))
        se = 1 / np.sqrt(max(dof - 1, 1))
        out["beta"][cols] = sxy / sxx
        out["se"][cols] = np.sqrt(np.maximum(syy - sxy**2 / sxx, 0) / dof / sxx)
        out["dof"][cols], out["sxx"][cols] = dof, sxx
        out["r_partial"][cols] = r
        out["p"][cols] = 2 * stats.t.sf(np.abs(t), dof)
        out["ci_low"][cols], out["ci_high"][cols] = np.tanh(z - 1.96 * se), np.tanh(z + 1.96 * se)
    return pd.DataFrame(out)[["n", "beta", "r_partial", "ci_low", "ci_high", "p", "se", "dof", "sxx"]]


def labelled_association(values: pd.DataFrame, x, nuisance, min_n: int, measure: str, label: tuple[str, str],
                         group: str) -> pd.DataFrame:
    """:func:`partial_association` of every region (column) of ``values`` (subjects x regions),
    as rows measure, region, <label name> = <label value>, group, n, beta, ..., with the
    Benjamini-Hochberg q over the regions (``q_fdr``)."""
    res = partial_association(values.to_numpy(float), np.asarray(x, float), np.asarray(nuisance, float), min_n)
    res.insert(0, "region", list(values.columns))
    res.insert(0, "measure", measure)
    res.insert(2, label[0], label[1])
    res.insert(3, "group", group)
    res["q_fdr"] = fdr(res["p"].to_numpy())
    return res


def fdr(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q of ``p`` (NaN kept as NaN)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


def nuisance_design(participants: pd.DataFrame, covariates: list[str], site_column: str | None) -> pd.DataFrame:
    """Intercept, covariates (categorical ones dummy-coded) and site dummies, indexed by
    participant_id; subjects missing a covariate are left out (the caller records them)."""
    df = participants.set_index("participant_id")
    cols = list(covariates) + ([site_column] if site_column else [])
    df = df.dropna(subset=cols)
    X = pd.DataFrame(index=df.index)
    X["intercept"] = 1.0
    for c in cols:
        col = df[c]
        if c == site_column or not pd.api.types.is_numeric_dtype(col):
            X = X.join(pd.get_dummies(col.astype(str), prefix=c, drop_first=True, dtype=float))
        else:
            X[c] = col.astype(float)
    return X


def numeric_column(table: pd.DataFrame, column: str, where: str) -> tuple[pd.Series, list[dict]]:
    """``column`` as numbers indexed like ``table``; a value that is not a number is NaN and a QC
    row (participant_id, step 'associations', status failed, reason naming the file and value)."""
    raw = table[column]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna() & ~raw.astype(str).str.strip().isin(["", "n/a", "NA", "nan"])
    rows = [dict(participant_id=table.loc[i, "participant_id"] if "participant_id" in table else i,
                 session=str(table.loc[i, "session"]) if "session" in table else "", step="associations",
                 status="failed", reason=f"{where}: {column} = {raw.loc[i]!r} is not a number (left out of "
                                         f"the analyses of {column})")
            for i in raw.index[bad]]
    return num, rows


def associations(values: dict[str, pd.DataFrame], participants: pd.DataFrame, variables: list[str],
                 groups: dict[str, list[str]], group_column: str, covariates: list[str], site_column: str | None,
                 min_n: int = MIN_N) -> pd.DataFrame:
    """:data:`ASSOCIATION_COLUMNS` for every measure x variable x group x region.

    Parameters
    ----------
    values : {measure: DataFrame subjects x regions, indexed by participant_id}
    participants : participant_id, the group column, covariates, site and the variables
        (numeric; a non-number is NaN: see :func:`numeric_column`)
    variables : columns of ``participants`` to associate
    groups : {name written in ``group``: [group labels analysed together]}, e.g.
        ``{"MDD": ["MDD"], "all": ["MDD", "HC"]}``; with several labels the group is a nuisance term
    """
    rows = []
    for gname, labels in groups.items():
        sel = participants[participants[group_column].astype(str).isin(labels)]
        Z = nuisance_design(sel, covariates, site_column)
        if len(labels) > 1:
            g = sel.set_index("participant_id")[group_column].astype(str)
            Z = Z.join(pd.get_dummies(g, prefix="group", drop_first=True, dtype=float), how="inner")
        for var in variables:
            x = pd.to_numeric(sel.set_index("participant_id")[var], errors="coerce").dropna()
            ids = Z.index.intersection(x.index)
            for measure, table in values.items():
                ids_m = ids.intersection(table.index)
                if len(ids_m) < min_n:
                    raise InputError(f"associations {measure} ~ {var} in {gname}: {len(ids_m)} subjects with "
                                     f"{var}, covariates and data; at least {min_n} are needed")
                rows.append(labelled_association(table.loc[ids_m], x.loc[ids_m], Z.loc[ids_m], min_n, measure,
                                                 ("variable", var), gname))
    if not rows:
        return pd.DataFrame(columns=ASSOCIATION_COLUMNS)
    return pd.concat(rows, ignore_index=True)[ASSOCIATION_COLUMNS]
