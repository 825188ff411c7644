"""Co-localisation of effect-size maps, and subject-level coupling of two measures per region.

Two regional d-maps (e.g. ReHo and CBF) are compared by their Pearson r across the regions both
have. Its p comes from a null that keeps the maps' spatial autocorrelation (:mod:`rviflow.nulls`):
null maps of map A, either BrainSMASH surrogates (Burt et al. 2020) from the distances between
atlas-region centroids, or spin-test permutations of the Desikan-Killiany cortical parcels
(Alexander-Bloch et al. 2018; cortex only), are correlated with map B;
p = (1 + #{|r_null| >= |r|}) / (1 + n).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from .errors import InputError
from .nulls import generate_nulls

COLOC_COLUMNS = ["map_a", "map_b", "n_regions", "r", "p_spatial_null", "p_parametric", "n_null", "null_method"]
NULL_COLUMNS = ["map_a", "map_b", "null_index", "r"]
COUPLING_COLUMNS = ["measure_a", "measure_b", "region", "n", "r", "ci_low", "ci_high", "p", "q_fdr",
                    "r_case", "r_control", "p_case_vs_control"]


def spatial_correlation(map_a: pd.Series, map_b: pd.Series, coords: pd.DataFrame, method: str = "brainsmash",
                        n_null: int = 1000, seed: int = 0) -> tuple[dict, np.ndarray]:
    """r of two regional maps and its p under ``n_null`` null maps of ``map_a``.

    coords : :func:`rviflow.nulls.null_coordinates` of ``method``; only regions in its index
        (and finite in both maps) are compared (spin: the DK cortical parcels).
    Returns the row of :data:`COLOC_COLUMNS` and the (n_null,) null r values.
    """
    regions = [r for r in map_a.index if r in map_b.index and r in coords.index
               and np.isfinite(map_a[r]) and np.isfinite(map_b[r])]
    if len(regions) < 10:
        raise InputError(f"co-localisation {map_a.name} vs {map_b.name}: {len(regions)} regions with both maps "
                         f"and a {method} null position; at least 10 are needed")
    a, b = map_a[regions].to_numpy(float), map_b[regions].to_numpy(float)
    r, p_par = stats.pearsonr(a, b)
    nulls = generate_nulls(map_a[regions].astype(float), method, coords, n_null, seed)
    nc = nulls - nulls.mean(1, keepdims=True)
    bc = b - b.mean()
    null_r = (nc @ bc) / np.sqrt((nc**2).sum(1) * (bc**2).sum())
    p = (1 + np.sum(np.abs(null_r) >= abs(r))) / (1 + n_null)
    return (dict(map_a=map_a.name, map_b=map_b.name, n_regions=len(regions), r=r, p_spatial_null=p,
                 p_parametric=p_par, n_null=n_null, null_method=method), null_r)


def colocalisation(effects: pd.DataFrame, coords: pd.DataFrame, method: str = "brainsmash", n_null: int = 1000,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every pair of measures in an effect_sizes table (map = d per region).

    Returns the co-localisation table (:data:`COLOC_COLUMNS`) and the null r of every pair
    (:data:`NULL_COLUMNS`, long: n_null rows per pair), saved so the report need not redraw it.
    """
    maps = {m: g.set_index("region")["d"].rename(m) for m, g in effects.groupby("measure", sort=False)}
    rows, nulls = [], []
    for a, b in itertools.combinations(maps, 2):
        row, null_r = spatial_correlation(maps[a], maps[b], coords, method, n_null, seed)
        rows.append(row)
        nulls.append(pd.DataFrame(dict(map_a=a, map_b=b, null_index=np.arange(len(null_r)), r=null_r)))
    null_table = pd.concat(nulls, ignore_index=True) if nulls else pd.DataFrame(columns=NULL_COLUMNS)
    return pd.DataFrame(rows, columns=COLOC_COLUMNS), null_table


def _r_ci(r: float, n: int) -> tuple[float, float]:
    if n <= 3:
        return np.nan, np.nan
    se = 1 / np.sqrt(n - 3)
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    return np.tanh(z - 1.96 * se), np.tanh(z + 1.96 * se)


def coupling(values: dict[str, pd.DataFrame], is_case: pd.Series, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Across-subject Pearson r of two measures in each region they share (e.g. ReHo-CBF coupling).

    Also r within cases and within controls and the Fisher-z test of their difference.
    """
    from statsmodels.stats.multitest import multipletests

    rows = []
    for a, b in pairs:
        if a not in values or b not in values:
            continue
        subj = values[a].index.intersection(values[b].index).intersection(is_case.index)
        block = []
        for region in [r for r in values[a].columns if r in values[b].columns]:
            x, y = values[a].loc[subj, region], values[b].loc[subj, region]
            ok = x.notna() & y.notna()
            if ok.sum() < 5 or x[ok].std() == 0 or y[ok].std() == 0:
                continue
            r, p = stats.pearsonr(x[ok], y[ok])
            grp = {}
            for lab, sel in (("case", is_case[subj][ok]), ("control", ~is_case[subj][ok])):
                xs, ys = x[ok][sel], y[ok][sel]
                grp[lab] = (stats.pearsonr(xs, ys)[0] if len(xs) >= 4 and xs.std() > 0 and ys.std() > 0 else np.nan,
                            len(xs))
            (rc, nc), (rh, nh) = grp["case"], grp["control"]
            pdiff = (2 * stats.norm.sf(abs(np.arctanh(rc) - np.arctanh(rh)) / np.sqrt(1 / (nc - 3) + 1 / (nh - 3)))
                     if np.isfinite(rc) and np.isfinite(rh) and min(nc, nh) > 3 else np.nan)
            lo, hi = _r_ci(r, int(ok.sum()))
            block.append(dict(measure_a=a, measure_b=b, region=region, n=int(ok.sum()), r=r, ci_low=lo, ci_high=hi,
                              p=p, r_case=rc, r_control=rh, p_case_vs_control=pdiff))
        if block:
            q = multipletests([row["p"] for row in block], method="fdr_bh")[1]
            for row, qq in zip(block, q):
                row["q_fdr"] = qq
            rows.extend(block)
    return pd.DataFrame(rows, columns=COUPLING_COLUMNS)
