"""Co-localisation of effect-size maps, and subject-level coupling of two measures per region.

Two regional d-maps (e.g. ReHo and CBF) are compared by their Pearson r across the regions both
have. Two things other than shared disease effects make that r large:

1. spatial autocorrelation: two smooth maps correlate by chance far more often than the
   parametric p says. The spatial null (:mod:`rviflow.transcriptomics.nulls`) correlates null maps of map A that
   keep its autocorrelation -- BrainSMASH surrogates (Burt et al. 2020) or spin-test
   permutations of the DK cortical parcels (Alexander-Bloch et al. 2018) -- with map B:
   ``p_spatial_null`` = (1 + #{|r_null| >= |r|}) / (1 + n_null).
2. shared sampling error: both maps come from the same subjects, whose measures are coupled
   region by region (:func:`coupling`), so the noise of d_A and d_B is correlated and r is far
   from 0 without any disease effect. The label permutation (:mod:`rviflow.cohort.permutation`)
   permutes diagnosis within site (Freedman-Lane for the covariates) and recomputes both maps:
   ``p_label_perm`` is two-sided, 2 x the smaller tail share (with the +1 of Phipson & Smyth 2010).

Neither null is valid alone: the spatial null ignores the shared noise, the label permutation
tests "no diagnosis effect anywhere" (it rejects when both maps have real but unrelated smooth
effects). The reported ``p`` is the intersection-union test p = max(p_spatial_null,
p_label_perm) (Berger 1982, Technometrics 24:295; Berger & Hsu 1996, Stat Sci 11:283): r
counts as co-localisation only when it beats both, and the test has level alpha whichever of
the two nulls holds (``method`` names it). Without subject tables only the spatial null is run
(``method`` spatial_null_only).

Coupling (:func:`coupling`) is a different question: whether two measures go together across
subjects within a region (partial r adjusted for diagnosis, covariates and site), not whether
the case-control differences of the two measures fall in the same regions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from rviflow.errors import InputError
from rviflow.transcriptomics.nulls import generate_nulls

COLOC_COLUMNS = ["map_a", "map_b", "n_regions", "n_subjects", "r", "p", "p_spatial_null", "p_label_perm",
                 "p_parametric", "n_null", "n_perm", "null_method", "method"]
NULL_COLUMNS = ["map_a", "map_b", "null", "null_index", "r"]
COUPLING_COLUMNS = ["measure_a", "measure_b", "region", "n", "r", "ci_low", "ci_high", "p", "q_fdr",
                    "r_case", "r_control", "p_case_vs_control"]
IUT = "max(p_spatial_null, p_label_perm) (intersection-union test)"


def _rows_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of the rows of x (k, R) with the rows of y (k, R) or a single row y (R,)."""
    xc = x - x.mean(-1, keepdims=True)
    yc = y - y.mean(-1, keepdims=True)
    return (xc * yc).sum(-1) / np.sqrt((xc**2).sum(-1) * (yc**2).sum(-1))


def spatial_correlation(map_a: pd.Series, map_b: pd.Series, coords: pd.DataFrame, method: str = "brainsmash",
                        n_null: int = 1000, seed: int = 0) -> tuple[dict, np.ndarray]:
    """r of two regional maps and its p under ``n_null`` null maps of ``map_a``.

    coords : :func:`rviflow.transcriptomics.nulls.null_coordinates` of ``method``; only regions in its index
        (and finite in both maps) are compared (spin: the DK cortical parcels).
    Returns the row of :data:`COLOC_COLUMNS` (spatial null only) and the (n_null,) null r values.
    """
    regions = [r for r in map_a.index if r in map_b.index and r in coords.index
               and np.isfinite(map_a[r]) and np.isfinite(map_b[r])]
    if len(regions) < 10:
        raise InputError(f"co-localisation {map_a.name} vs {map_b.name}: {len(regions)} regions with both maps "
                         f"and a {method} null position; at least 10 are needed")
    a, b = map_a[regions].to_numpy(float), map_b[regions].to_numpy(float)
    r, p_par = stats.pearsonr(a, b)
    nulls = generate_nulls(map_a[regions].astype(float), method, coords, n_null, seed)
    null_r = _rows_r(nulls, b)
    p = (1 + np.sum(np.abs(null_r) >= abs(r))) / (1 + n_null)
    return (dict(map_a=map_a.name, map_b=map_b.name, n_regions=len(regions), n_subjects=np.nan, r=r, p=p,
                 p_spatial_null=p, p_label_perm=np.nan, p_parametric=p_par, n_null=n_null, n_perm=0,
                 null_method=method, method="spatial_null_only"), null_r)


def two_sided_perm_p(observed: float, null: np.ndarray) -> float:
    """2 x the smaller of (1 + #{null >= obs}) / (1 + n) and (1 + #{null <= obs}) / (1 + n), at most 1.

    Two-sided without assuming the null is centred at 0 (shared noise shifts it)."""
    n = len(null)
    hi = (1 + np.sum(null >= observed)) / (1 + n)
    lo = (1 + np.sum(null <= observed)) / (1 + n)
    return float(min(1.0, 2 * min(hi, lo)))


def label_permutation_maps(values_a: pd.DataFrame, values_b: pd.DataFrame, design: pd.DataFrame,
                           sites: pd.Series | None, n_perm: int = 1000, seed: int = 0,
                           what: str = "") -> tuple[pd.Series, pd.Series, np.ndarray, int]:
    """Observed d-maps of two measures and the r of both maps recomputed under label permutations.

    values_a, values_b : subjects x regions (the same region columns, the regions to compare)
    design : :func:`rviflow.cohort.effects.design_matrix` rows (intercept, case, covariates, site dummies)
    sites : site label per participant (exchangeability blocks) or None
    Returns (d_a, d_b) on the subjects with complete data, the (n_perm,) permutation r and the
    number of subjects used.
    """
    from rviflow.cohort.permutation import FreedmanLane, complete_design, within_block_permutations

    (va, vb), X = complete_design([values_a, values_b], design, what=what)
    if va.shape[1] < 10:
        raise InputError(f"{what}: {va.shape[1]} regions with values in most subjects of both measures; "
                         "at least 10 are needed")
    k = list(X.columns).index("case")
    fl = FreedmanLane(np.hstack([va.to_numpy(float), vb.to_numpy(float)]), X.to_numpy(float), k)
    d = fl.d()[0]
    nr = va.shape[1]
    blocks = sites.reindex(X.index).astype(str).to_numpy() if sites is not None else None
    dp = fl.d(within_block_permutations(blocks, len(X), n_perm, seed))
    null_r = _rows_r(dp[:, :nr], dp[:, nr:])
    return pd.Series(d[:nr], index=va.columns), pd.Series(d[nr:], index=vb.columns), null_r, len(X)


def colocalisation(effects: pd.DataFrame, coords: pd.DataFrame, method: str = "brainsmash", n_null: int = 1000,
                   seed: int = 0, values: dict[str, pd.DataFrame] | None = None, design: pd.DataFrame | None = None,
                   sites: pd.Series | None = None, n_perm: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every pair of measures in an effect_sizes table (map = d per region).

    With ``values`` (measure -> subjects x regions table, the one the effect sizes came from) and
    ``design`` the pair's r is tested against both nulls (module docstring): the d-maps are
    recomputed on the subjects with complete data in the compared regions (the effect_sizes d
    when nothing is missing) and p = max(p_spatial_null, p_label_perm). Without them (or without
    a table of either measure), the spatial null only.

    Returns the co-localisation table (:data:`COLOC_COLUMNS`) and every null r
    (:data:`NULL_COLUMNS`, long: n_null ``spatial`` and n_perm ``label`` rows per pair).
    """
    maps = {m: g.set_index("region")["d"].rename(m) for m, g in effects.groupby("measure", sort=False)}
    rows, nulls = [], []
    for a, b in itertools.combinations(maps, 2):
        if values is None or design is None or a not in values or b not in values:
            row, null_r = spatial_correlation(maps[a], maps[b], coords, method, n_null, seed)
            perm_r = np.array([])
        else:
            regions = [r for r in maps[a].index if r in maps[b].index and r in coords.index
                       and np.isfinite(maps[a][r]) and np.isfinite(maps[b][r])
                       and r in values[a].columns and r in values[b].columns]
            da, db, perm_r, n_subj = label_permutation_maps(values[a][regions], values[b][regions], design, sites,
                                                            n_perm, seed, what=f"co-localisation {a} vs {b}")
            row, null_r = spatial_correlation(da.rename(a), db.rename(b), coords, method, n_null, seed)
            p_label = two_sided_perm_p(row["r"], perm_r)
            row.update(n_subjects=n_subj, p_label_perm=p_label, n_perm=n_perm, method=IUT,
                       p=max(row["p_spatial_null"], p_label))
        rows.append(row)
        nulls.append(pd.DataFrame(dict(map_a=a, map_b=b, null="spatial", null_index=np.arange(len(null_r)),
                                       r=null_r)))
        if len(perm_r):
            nulls.append(pd.DataFrame(dict(map_a=a, map_b=b, null="label", null_index=np.arange(len(perm_r)),
                                           r=perm_r)))
    null_table = pd.concat(nulls, ignore_index=True) if nulls else pd.DataFrame(columns=NULL_COLUMNS)
    return pd.DataFrame(rows, columns=COLOC_COLUMNS), null_table


def _r_ci(r: float, n: int) -> tuple[float, float]:
    if n <= 3:
        return np.nan, np.nan
    se = 1 / np.sqrt(n - 3)
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    return np.tanh(z - 1.96 * se), np.tanh(z + 1.96 * se)


def _residualise(Y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Residuals of every column of Y (n, m) on X (n, p) (least squares; X may be rank deficient)."""
    return Y - X @ np.linalg.lstsq(X, Y, rcond=None)[0]


def _partial_r(x: np.ndarray, y: np.ndarray, X: np.ndarray) -> tuple[float, float, int]:
    """Partial r of x and y given the columns of X (incl. intercept), its t-test p, and its dof."""
    rx, ry = _residualise(np.c_[x, y], X).T
    dof = len(x) - np.linalg.matrix_rank(X) - 1
    if dof < 2 or rx.std() == 0 or ry.std() == 0:
        return np.nan, np.nan, dof
    r = float(np.corrcoef(rx, ry)[0, 1])
    t = r * np.sqrt(dof / max(1 - r**2, 1e-300))
    return r, float(2 * stats.t.sf(abs(t), dof)), dof


def coupling(values: dict[str, pd.DataFrame], design: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Across-subject partial r of two measures in each region they share (e.g. ReHo-CBF coupling).

    ``design`` (:func:`rviflow.cohort.effects.design_matrix`: intercept, case, covariates, site dummies)
    is regressed out of both measures first: age, sex or site effects common to two measures
    (or the diagnosis) would otherwise show as coupling. p is the t test of the partial r (dof n
    - 1 - rank(design)), its CI Fisher's z with that dof; q is BH over the regions of a pair.
    Also the partial r within cases and within controls (covariates and site regressed out
    within the group) and the Fisher-z test of their difference.
    """
    from statsmodels.stats.multitest import multipletests

    rows = []
    for a, b in pairs:
        if a not in values or b not in values:
            continue
        subj = values[a].index.intersection(values[b].index).intersection(design.index)
        block = []
        for region in [r for r in values[a].columns if r in values[b].columns]:
            x, y = values[a].loc[subj, region], values[b].loc[subj, region]
            ok = (x.notna() & y.notna()).to_numpy()
            X = design.loc[subj[ok]]
            X = X.loc[:, X.std(ddof=0).gt(0) | X.columns.isin(["intercept"])]
            if ok.sum() < X.shape[1] + 4 or x[ok].std() == 0 or y[ok].std() == 0:
                continue
            r, p, dof = _partial_r(x[ok].to_numpy(float), y[ok].to_numpy(float), X.to_numpy(float))
            grp = {}
            for lab, sel in (("case", X["case"] == 1), ("control", X["case"] == 0)):
                Xg = X.loc[sel.to_numpy(), [c for c in X.columns if c != "case"]]
                Xg = Xg.loc[:, Xg.std(ddof=0).gt(0) | Xg.columns.isin(["intercept"])]
                rg, _, dg = (_partial_r(x[ok][sel.to_numpy()].to_numpy(float), y[ok][sel.to_numpy()].to_numpy(float),
                                        Xg.to_numpy(float)) if len(Xg) > Xg.shape[1] + 3 else (np.nan, np.nan, 0))
                grp[lab] = (rg, dg)
            (rc, dc), (rh, dh) = grp["case"], grp["control"]
            # Fisher z of a partial r: SE 1 / sqrt(n - 3 - k) = 1 / sqrt(dof - 1)
            pdiff = (2 * stats.norm.sf(abs(np.arctanh(rc) - np.arctanh(rh)) / np.sqrt(1 / (dc - 1) + 1 / (dh - 1)))
                     if np.isfinite(rc) and np.isfinite(rh) and min(dc, dh) > 1 else np.nan)
            lo, hi = _r_ci(r, dof + 2)
            block.append(dict(measure_a=a, measure_b=b, region=region, n=int(ok.sum()), r=r, ci_low=lo, ci_high=hi,
                              p=p, r_case=rc, r_control=rh, p_case_vs_control=pdiff))
        block = [row for row in block if np.isfinite(row["p"])]
        if block:
            q = multipletests([row["p"] for row in block], method="fdr_bh")[1]
            for row, qq in zip(block, q):
                row["q_fdr"] = qq
            rows.extend(block)
    return pd.DataFrame(rows, columns=COUPLING_COLUMNS)
