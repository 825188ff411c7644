"""Gene-map association: which genes' regional expression follows an imaging effect map.

Per gene, the Pearson r between its expression and the map across regions, with a p-value from
null maps that keep the map's spatial autocorrelation (:mod:`rviflow.transcriptomics.nulls`): the genes x nulls
correlations are one matrix product of z-scored arrays. Then PLS regression of the map on all
genes, as imaging-transcriptomics does (Martins et al. 2021): components, variance explained
(PLS1's p from the same null maps) and PLS1 gene weights with bootstrapped z-scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rviflow.errors import InputError

GENE_COLUMNS = ["gene", "r", "p_spatial", "q", "pls1_weight", "z"]
PLS_COLUMNS = ["component", "variance_explained", "cumulative", "p_spatial", "n_null", "n_regions"]


def select_regions(labels: pd.DataFrame, expr: pd.DataFrame, brain_map: pd.Series, cortex_only: bool = True,
                   left_only: bool = True) -> list[str]:
    """Atlas regions analysed: with expression for every gene and a finite map value (atlas order).

    ``cortex_only`` keeps structure == cortex (AHBA sampling of subcortex differs); ``left_only``
    (default) keeps hemisphere L: right-hemisphere AHBA samples come from 2 of the 6 donors only
    (Arnatkeviciute et al. 2019, NeuroImage 189:353), so right-hemisphere expression rests on two
    brains.
    """
    keep = labels
    if cortex_only:
        keep = keep[keep["structure"] == "cortex"]
    if left_only:
        keep = keep[keep["hemisphere"] == "L"]
    full = expr.notna().all(axis=1)
    regions = [r for r in keep["name"].astype(str) if r in expr.index and full[r]
               and r in brain_map.index and np.isfinite(brain_map[r])]
    if len(regions) < 10:
        raise InputError(f"only {len(regions)} regions have both expression and a map value "
                         f"(cortex_only={cortex_only}, left_only={left_only}); at least 10 are needed")
    return regions


def zscore(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """(a - mean) / SD (ddof 0) along ``axis``; constant vectors become 0."""
    a = np.asarray(a, dtype=np.float64)
    sd = a.std(axis=axis, keepdims=True)
    return (a - a.mean(axis=axis, keepdims=True)) / np.where(sd > 0, sd, np.inf)


def correlate(expr: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Pearson r of every map with every gene as one matrix product.

    expr : (R, G) regions x genes; maps : (R,) or (K, R). Returns (G,) or (K, G).
    """
    ez = zscore(expr, 0)
    mz = zscore(np.atleast_2d(maps), 1)
    r = mz @ ez / expr.shape[0]
    return r[0] if np.ndim(maps) == 1 else r


def spatial_p(r: np.ndarray, r_null: np.ndarray) -> np.ndarray:
    """Two-sided p per gene: (1 + #{|r_null| >= |r|}) / (1 + n_null). r: (G,); r_null: (N, G)."""
    exceed = (np.abs(r_null) >= np.abs(r)[None, :] - 1e-12).sum(0)
    return (1 + exceed) / (1 + r_null.shape[0])


def bh_fdr(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values."""
    p = np.asarray(p, float)
    n = len(p)
    order = np.argsort(p)
    q = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(q[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def pls_regression(x: np.ndarray, y: np.ndarray, n_components: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """PLS1 (NIPALS) of y (R,) on x (R, G), both z-scored here.

    Returns (weights (G, C) unit-norm, variance of y explained per component (C,)).
    """
    xz, yz = zscore(x, 0), zscore(y, 0)
    total = float(yz @ yz)
    weights, ve = [], []
    for _ in range(n_components):
        w = xz.T @ yz
        norm = np.linalg.norm(w)
        if norm == 0 or total == 0:
            break
        w /= norm
        t = xz @ w
        tt = float(t @ t)
        p_load = xz.T @ t / tt
        q = float(yz @ t) / tt
        xz = xz - np.outer(t, p_load)
        yz = yz - q * t
        weights.append(w)
        ve.append(q * q * tt / total)
    return np.stack(weights, axis=1), np.array(ve)


def pls1_variance_explained(x: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Variance of each map explained by its PLS1 component (= r(X w, y)^2), all maps at once.

    x : (R, G); maps : (K, R). Returns (K,).
    """
    xz = zscore(x, 0)
    yz = zscore(np.atleast_2d(maps), 1)
    t = xz @ (xz.T @ yz.T)  # (R, K) PLS1 scores, unnormalised
    return (zscore(t, 0) * yz.T).mean(0) ** 2


def bootstrap_pls1_z(x: np.ndarray, y: np.ndarray, w1: np.ndarray, n_boot: int = 1000, seed: int = 0,
                     chunk: int = 100) -> np.ndarray:
    """PLS1 weight / its bootstrap SD (regions resampled with replacement; signs aligned to ``w1``).

    A resample's PLS1 weights are its gene-map correlations scaled to unit norm; a resample is a
    vector of region counts, so its correlations come from count-weighted moments: a few
    (boots x regions) @ (regions x genes) products per chunk of resamples.
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    xc = zscore(x, 0)  # correlations are invariant to this; keeps the moments well scaled
    yc = zscore(y, 0)
    x2, xy = xc**2, xc * yc[:, None]
    total, total_sq = np.zeros_like(w1), np.zeros_like(w1)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(b)]) / n  # (b, R)
        mx, my = counts @ xc, counts @ yc  # weighted means (b, G), (b,)
        vx = counts @ x2 - mx**2
        vy = counts @ yc**2 - my**2
        sd = np.sqrt(np.where(vx > 0, vx, np.inf) * np.where(vy > 0, vy, np.inf)[:, None])
        r = (counts @ xy - mx * my[:, None]) / sd
        w = r / np.linalg.norm(r, axis=1, keepdims=True).clip(1e-300)
        w *= np.sign(w @ w1)[:, None] + (w @ w1 == 0)[:, None]
        total += w.sum(0)
        total_sq += (w**2).sum(0)
        done += b
    var = (total_sq - total**2 / n_boot) / max(n_boot - 1, 1)
    sd = np.sqrt(np.clip(var, 0, None))
    return w1 / np.where(sd > 0, sd, np.inf)


def gene_association(expr: pd.DataFrame, brain_map: pd.Series, nulls: np.ndarray, n_components: int = 3,
                     n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Genes table and PLS summary of one map.

    Parameters
    ----------
    expr : DataFrame, regions x genes (regions analysed only)
    brain_map : Series over the same regions
    nulls : (N, regions) null maps of ``brain_map``

    Returns
    -------
    genes : gene, r, p_spatial, q (BH over genes), pls1_weight, z (PLS1 weight / bootstrap SD),
        sorted by r (descending)
    pls : component, variance_explained, cumulative, p_spatial (PLS1 vs the null maps), n_null, n_regions
    """
    x = expr.to_numpy(np.float64)
    y = brain_map.reindex(expr.index).to_numpy(np.float64)
    r = correlate(x, y)
    r_null = correlate(x, nulls)
    p = spatial_p(r, r_null)
    weights, ve = pls_regression(x, y, n_components)
    w1 = weights[:, 0]
    if w1 @ r < 0:  # PLS1 oriented so that positive weight = expression rising with the map
        w1 = -w1
    z = bootstrap_pls1_z(x, y, w1, n_boot, seed)
    genes = pd.DataFrame(dict(gene=expr.columns.astype(str), r=r, p_spatial=p, q=bh_fdr(p), pls1_weight=w1, z=z))
    genes = genes.sort_values(["r", "gene"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    ve_null = pls1_variance_explained(x, nulls)
    p_pls = (1 + (ve_null >= ve[0] - 1e-12).sum()) / (1 + len(ve_null))
    pls = pd.DataFrame(dict(component=np.arange(1, len(ve) + 1), variance_explained=ve, cumulative=np.cumsum(ve),
                            p_spatial=[p_pls] + [np.nan] * (len(ve) - 1), n_null=len(nulls), n_regions=len(y)))
    return genes, pls


def read_map(name: str, path: str) -> pd.Series:
    """An imaging map (region -> value) by name: a measure's d from effect_sizes.tsv,
    ``rvi_<measure>`` = that measure's RVI expected pattern (group/expected_pattern_<measure>.tsv),
    or a design map (``change_<m>``, ``assoc_<m>_<variable>``: :func:`rviflow.cohort.designs.design_map`)."""
    if name.startswith("rvi_"):
        from rviflow.cohort.rvi import read_expected_pattern

        return read_expected_pattern(path).rename(name)
    if name.startswith(("change_", "assoc_")):
        from rviflow.cohort.designs import design_map

        return design_map(name, path)
    eff = pd.read_csv(path, sep="\t", na_values="n/a")
    rows = eff[eff["measure"] == name]
    if rows.empty:
        raise InputError(f"transcriptomics.maps: no measure {name!r} in the effect sizes (measures: "
                         f"{', '.join(eff['measure'].unique())})", path=path)
    return pd.Series(rows["d"].to_numpy(float), index=rows["region"].astype(str), name=name)


def null_maps_table(nulls: np.ndarray, regions: list[str], expr: pd.DataFrame) -> pd.DataFrame:
    """The null maps used (null_index, pls1_variance_explained, one column per region), saved so
    the enrichment's ensemble null uses the same maps and the report can show the PLS1 null."""
    table = pd.DataFrame(nulls, columns=regions)
    table.insert(0, "pls1_variance_explained", pls1_variance_explained(expr.loc[regions].to_numpy(float), nulls))
    table.insert(0, "null_index", np.arange(len(nulls)))
    return table


def run_gene_association(map_name: str, map_path: str, expression_tsv: str, atlas_image: str, atlas_labels: str,
                         out_genes: str, out_pls: str, cortex_only: bool = True, left_only: bool = True,
                         null_method: str = "brainsmash", n_nulls: int = 1000, n_components: int = 3,
                         n_boot: int = 1000, seed: int = 0, out_null_maps: str | None = None) -> None:
    """Read inputs, compute :func:`gene_association` against generated null maps, write the tables
    (and the null maps, :func:`null_maps_table`, to ``out_null_maps``)."""
    from rviflow.transcriptomics.expression import read_expression
    from rviflow.transcriptomics.nulls import null_maps
    from rviflow.preprocess.parcellate import read_labels
    from rviflow.io.regional import write_tsv_atomic

    labels = read_labels(atlas_labels)
    expr = read_expression(expression_tsv)
    brain_map = read_map(map_name, map_path)
    regions = select_regions(labels, expr, brain_map, cortex_only, left_only)
    nulls = null_maps(brain_map[regions], null_method, atlas_image, labels, n_nulls, seed)
    genes, pls = gene_association(expr.loc[regions], brain_map[regions], nulls, n_components, n_boot, seed)
    pls["null_method"] = null_method
    write_tsv_atomic(genes, out_genes)
    write_tsv_atomic(pls, out_pls)
    if out_null_maps:
        # full precision: the enrichment recomputes the null gene rankings from these maps
        write_tsv_atomic(null_maps_table(nulls, regions, expr), out_null_maps, float_format="%.17g")
