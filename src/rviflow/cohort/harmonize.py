"""Site harmonisation with ComBat (neuroHarmonize), preserving diagnosis and covariate effects.

The fitted model (location/scale per site and region, pooled variance, covariate betas) is a
plain dict; :func:`save_model` / :func:`load_model` keep it, and :func:`apply_combat` harmonises
new subjects from known sites without refitting (the frozen reference).

ComBat needs complete data and a variance per site: missing regional values are filled with
the region's mean for the fit and put back as missing afterwards; a site with fewer than
``min_per_site`` subjects or a constant region raises InputError.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from rviflow.errors import InputError


def combat_covariates(design: pd.DataFrame, sites: pd.Series, preserve: list[str] | None = None) -> pd.DataFrame:
    """neuroHarmonize covariates: SITE plus the design columns whose effects are preserved.

    Parameters
    ----------
    design : DataFrame from :func:`rviflow.cohort.effects.design_matrix` (intercept, case, covariates,
        site dummies), indexed by participant_id
    sites : Series of site labels, indexed by participant_id
    preserve : design columns to preserve (default: every column but the intercept and the
        site dummies, i.e. diagnosis + covariates)
    """
    site_name = sites.name or "site"
    cols = preserve if preserve is not None else [
        c for c in design.columns if c != "intercept" and not str(c).startswith(f"{site_name}_")]
    cov = design[cols].astype(float).copy()
    cov.insert(0, "SITE", sites.reindex(design.index).astype(str).to_numpy())
    return cov


def check_sites(sites: pd.Series, min_per_site: int, what: str = "") -> None:
    """InputError naming the first site with fewer than ``min_per_site`` subjects."""
    counts = sites.astype(str).value_counts()
    small = counts[counts < min_per_site]
    if len(small):
        raise InputError(
            f"{what + ': ' if what else ''}site {small.index[0]!r} has {int(small.iloc[0])} subject(s) with data; "
            f"ComBat needs at least {min_per_site} per site (merge it with another site, drop it, or set "
            f"cohort.harmonize: false)")
    if len(counts) < 2:
        raise InputError(f"{what + ': ' if what else ''}only one site ({counts.index[0]!r}): nothing to harmonise "
                         "(set cohort.harmonize: false)")


def _prepare(values: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray]:
    X = values.to_numpy(float)
    missing = np.isnan(X)
    if missing.all(axis=0).any():
        raise InputError(f"{what}: region {values.columns[missing.all(axis=0)][0]!r} has no values")
    sd = np.nanstd(X, axis=0)
    if (sd == 0).any():
        raise InputError(f"{what} {values.columns[sd == 0][0]}: the region has the same value in every subject")
    X = np.where(missing, np.nanmean(X, axis=0), X)
    return X, missing


def fit_combat(
    values: pd.DataFrame, covars: pd.DataFrame, min_per_site: int = 3, eb: bool = True, what: str = ""
) -> tuple[dict, pd.DataFrame]:
    """Fit ComBat on ``values`` (subjects x regions) with ``covars`` from :func:`combat_covariates`.

    Returns the model (dict; ``regions`` and ``covariates`` recorded in it) and the harmonised
    values (same shape, index and columns; missing values stay missing).
    """
    from neuroHarmonize import harmonizationLearn

    covars = covars.loc[values.index]
    check_sites(covars["SITE"], min_per_site, what)
    X, missing = _prepare(values, what)
    with contextlib.redirect_stdout(io.StringIO()):
        model, adj = harmonizationLearn(X, covars.reset_index(drop=True), eb=eb)
    model["regions"] = list(values.columns)
    model["covariates"] = list(covars.columns)
    adj = np.where(missing, np.nan, adj)
    return model, pd.DataFrame(adj, index=values.index, columns=values.columns)


def apply_combat(model: dict, values: pd.DataFrame, covars: pd.DataFrame, what: str = "") -> pd.DataFrame:
    """Harmonise new subjects with a fitted model (no refitting); sites must be known to it."""
    from neuroHarmonize import harmonizationApply

    covars = covars.loc[values.index, model["covariates"]]
    unknown = sorted(set(covars["SITE"].astype(str)) - set(map(str, model["SITE_labels"])))
    if unknown:
        raise InputError(f"{what + ': ' if what else ''}site {unknown[0]!r} is not in the ComBat reference "
                         f"(known: {', '.join(map(str, model['SITE_labels']))})")
    missing_regions = [r for r in model["regions"] if r not in values.columns]
    if missing_regions:
        raise InputError(f"{what + ': ' if what else ''}region {missing_regions[0]!r} of the reference is missing")
    values = values[model["regions"]]
    X = values.to_numpy(float)
    missing = np.isnan(X)
    # fill with the reference grand mean: the filled values are discarded again below
    X = np.where(missing, np.asarray(model["grand_mean"]).ravel()[None, :] if "grand_mean" in model else 0.0, X)
    # neuroHarmonize builds the site design from the sites present: pad one row per absent
    # training site (each subject is adjusted on its own, so the pads change nothing) and drop them
    cov = covars.reset_index(drop=True)
    absent = [s for s in model["SITE_labels"] if s not in set(cov["SITE"])]
    pad = pd.DataFrame([cov.iloc[0].to_dict() | {"SITE": s} for s in absent], columns=cov.columns)
    if absent:
        X, cov = np.vstack([X, np.repeat(X[:1], len(absent), 0)]), pd.concat([cov, pad], ignore_index=True)
    with contextlib.redirect_stdout(io.StringIO()):
        adj = harmonizationApply(X, cov, model)[: len(missing)]
    adj = np.where(missing, np.nan, adj)
    return pd.DataFrame(adj, index=values.index, columns=values.columns)


def save_model(model: dict, path: str | Path) -> None:
    from rviflow.io.bids import save_pickle

    save_pickle(model, path)


def load_model(path: str | Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh)
