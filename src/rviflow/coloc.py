"""Co-localisation of effect-size maps, and subject-level coupling of two measures per region.

Two regional d-maps (e.g. ReHo and CBF) are compared by their Pearson r across the regions both
have. Its p comes from a null that keeps the maps' spatial autocorrelation: BrainSMASH
(Burt et al. 2020) surrogates of map A, generated from the Euclidean distances between the
atlas regions' centroids (mm), are correlated with map B; p = (1 + #{|r_null| >= |r|}) / (1 + n).
"""

from __future__ import annotations

import contextlib
import io
import itertools

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import stats

from .errors import InputError

COLOC_COLUMNS = ["map_a", "map_b", "n_regions", "r", "p_spatial_null", "p_parametric", "n_null", "null"]
COUPLING_COLUMNS = ["measure_a", "measure_b", "region", "n", "r", "ci_low", "ci_high", "p", "q_fdr",
                    "r_case", "r_control", "p_case_vs_control"]


def region_centroids(atlas_image: str, labels: pd.DataFrame) -> pd.DataFrame:
    """Centroid (x, y, z in the image's world mm) of every labelled region, indexed by name."""
    img = nib.load(atlas_image)
    data = np.asarray(img.dataobj).astype(int)
    rows = {}
    for idx, name in zip(labels["index"], labels["name"]):
        ijk = np.argwhere(data == int(idx))
        if len(ijk):
            rows[name] = nib.affines.apply_affine(img.affine, ijk.mean(0))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["x", "y", "z"])


def distance_matrix(centroids: pd.DataFrame) -> np.ndarray:
    c = centroids[["x", "y", "z"]].to_numpy(float)
    return np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))


def smash_surrogates(brain_map: np.ndarray, distances: np.ndarray, n: int = 1000, seed: int = 0) -> np.ndarray:
    """(n, regions) BrainSMASH surrogates of ``brain_map`` matching its variogram."""
    from brainsmash.mapgen.base import Base

    nh = min(25, max(5, len(brain_map) // 3))
    with contextlib.redirect_stdout(io.StringIO()):
        gen = Base(x=np.asarray(brain_map, float), D=distances, seed=seed, nh=nh, pv=70)
        return np.atleast_2d(gen(n=n, batch_size=min(n, 100)))


def spatial_correlation(
    map_a: pd.Series, map_b: pd.Series, centroids: pd.DataFrame, n_null: int = 1000, seed: int = 0
) -> dict:
    """r of two regional maps and its p under BrainSMASH surrogates of ``map_a``."""
    regions = [r for r in map_a.index if r in map_b.index and r in centroids.index
               and np.isfinite(map_a[r]) and np.isfinite(map_b[r])]
    if len(regions) < 10:
        raise InputError(f"co-localisation {map_a.name} vs {map_b.name}: {len(regions)} regions with both maps "
                         "and an atlas centroid; at least 10 are needed")
    a, b = map_a[regions].to_numpy(float), map_b[regions].to_numpy(float)
    r, p_par = stats.pearsonr(a, b)
    sur = smash_surrogates(a, distance_matrix(centroids.loc[regions]), n_null, seed)
    sc = sur - sur.mean(1, keepdims=True)
    bc = b - b.mean()
    null = (sc @ bc) / np.sqrt((sc**2).sum(1) * (bc**2).sum())
    p = (1 + np.sum(np.abs(null) >= abs(r))) / (1 + n_null)
    return dict(map_a=map_a.name, map_b=map_b.name, n_regions=len(regions), r=r, p_spatial_null=p,
                p_parametric=p_par, n_null=n_null, null="brainsmash")


def colocalisation(effects: pd.DataFrame, centroids: pd.DataFrame, n_null: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every pair of measures in an effect_sizes table (map = d per region)."""
    maps = {m: g.set_index("region")["d"].rename(m) for m, g in effects.groupby("measure", sort=False)}
    rows = [spatial_correlation(maps[a], maps[b], centroids, n_null, seed)
            for a, b in itertools.combinations(maps, 2)]
    return pd.DataFrame(rows, columns=COLOC_COLUMNS)


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
