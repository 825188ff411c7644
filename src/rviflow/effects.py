"""Covariate-adjusted case-control effect sizes per region (ENIGMA convention).

For each region an ordinary least-squares model ``value ~ group + covariates`` (statsmodels) is
fitted on the subjects with a value. Cohen's d is the covariate-adjusted group difference over
the residual standard deviation, d = beta_case / sigma_resid; without covariates this is the
classical d with the pooled SD. Its standard error, sqrt((se_beta / sigma)^2 + d^2 / (2 df)),
reduces to the Hedges & Olkin form without covariates; the 95% CI is d -/+ 1.96 SE; p is the
OLS t test of beta_case; q is Benjamini-Hochberg over the regions of one measure.

ENIGMA's d from t, t (n1 + n2) / (sqrt(n1 n2) sqrt(df)), agrees when group and covariates are
uncorrelated but shrinks towards 0 when they are correlated (e.g. older cases), so it is not
used here; :func:`cohens_d_from_t` keeps it for comparison with published ENIGMA tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .errors import InputError

EFFECT_COLUMNS = ["measure", "region", "d", "se", "ci_low", "ci_high", "t", "p", "q_fdr", "n_case", "n_control"]


def design_matrix(
    participants: pd.DataFrame, group_column: str, case_label: str, control_label: str,
    covariates: list[str], site_column: str | None,
) -> pd.DataFrame:
    """Numeric design (intercept, case indicator, covariates, site dummies), indexed by participant_id.

    Categorical covariates (strings) are dummy-coded with the first level dropped. Subjects in
    neither group are left out; a group label outside the configured ones, or a missing
    covariate value, raises InputError naming the subject.
    """
    df = participants.set_index("participant_id")
    labels = df[group_column].astype(str)
    bad = labels[~labels.isin([case_label, control_label])]
    if len(bad):
        raise InputError(
            f"{bad.index[0]}: {group_column} = {bad.iloc[0]!r} is neither the case label "
            f"{case_label!r} nor the control label {control_label!r} (config: groups)"
        )
    cols = list(covariates) + ([site_column] if site_column else [])
    for c in cols:
        miss = df[c].isna()
        if miss.any():
            raise InputError(f"{miss.index[miss][0]}: covariate {c!r} is missing in participants.tsv")
    X = pd.DataFrame(index=df.index)
    X["intercept"] = 1.0
    X["case"] = (labels == case_label).astype(float)
    for c in cols:
        col = df[c]
        if c == site_column or not pd.api.types.is_numeric_dtype(col):
            dummies = pd.get_dummies(col.astype(str), prefix=c, drop_first=True, dtype=float)
            X = X.join(dummies)
        else:
            X[c] = col.astype(float)
    return X


def cohens_d_from_t(t: np.ndarray, n1: np.ndarray, n2: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """ENIGMA's d from a group t statistic."""
    return t * (n1 + n2) / (np.sqrt(n1 * n2) * np.sqrt(dof))


def d_standard_error(se_beta_over_sigma: np.ndarray, d: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """Large-sample SE of the adjusted d (Hedges & Olkin 1985, generalised to a linear model)."""
    return np.sqrt(se_beta_over_sigma**2 + d**2 / (2.0 * dof))


def effect_sizes(
    values: pd.DataFrame, design: pd.DataFrame, measure: str, min_per_group: int = 3
) -> pd.DataFrame:
    """Case - control d per region.

    Parameters
    ----------
    values : DataFrame (subjects x regions), indexed by participant_id
    design : DataFrame from :func:`design_matrix`
    measure : str
        Name written into the ``measure`` column (e.g. 'reho').
    min_per_group : int
        Fewer cases or controls with data raises InputError.

    Returns
    -------
    DataFrame with :data:`EFFECT_COLUMNS`, one row per region.
    """
    import statsmodels.api as sm
    from statsmodels.stats.multitest import multipletests

    common = values.index.intersection(design.index)
    values, design = values.loc[common], design.loc[common]
    rows = []
    for region in values.columns:
        y = values[region]
        ok = y.notna()
        X = design.loc[ok]
        n1, n2 = int(X["case"].sum()), int((1 - X["case"]).sum())
        if min(n1, n2) < min_per_group:
            raise InputError(f"{measure} {region}: {n1} cases and {n2} controls with data; "
                             f"at least {min_per_group} of each are needed")
        if y[ok].std() == 0:
            raise InputError(f"{measure} {region}: the region has the same value in every subject")
        # a site or category level with no subject left here would make the design singular
        X = X.loc[:, X.std(ddof=0).gt(0) | X.columns.isin(["intercept", "case"])]
        fit = sm.OLS(y[ok].to_numpy(float), X.to_numpy(float)).fit()
        k = list(X.columns).index("case")
        sigma = np.sqrt(fit.scale)
        rows.append(dict(measure=measure, region=region, t=fit.tvalues[k], p=fit.pvalues[k],
                         n_case=n1, n_control=n2, dof=fit.df_resid, d=fit.params[k] / sigma,
                         se_rel=fit.bse[k] / sigma))
    out = pd.DataFrame(rows)
    z = stats.norm.ppf(0.975)
    d = out["d"].to_numpy()
    se = d_standard_error(out["se_rel"].to_numpy(), d, out["dof"].to_numpy(float))
    out["se"] = se
    out["ci_low"], out["ci_high"] = d - z * se, d + z * se
    out["q_fdr"] = multipletests(out["p"].to_numpy(), method="fdr_bh")[1]
    return out[EFFECT_COLUMNS]
