"""Gene-set enrichment of a gene ranking against an ensemble (spatially constrained) null.

Gene-label permutation (GSEA prerank, a hypergeometric test of the top genes) treats genes as
exchangeable; AHBA genes are not (spatial autocorrelation of the map and of expression, gene-gene
co-expression), and it calls random maps enriched far too often (Fulcher et al. 2021, Nat Commun
12:2669; 16-19% of GO BP sets at p < 0.05 for smooth random maps on the real DK table here,
benchmarks/results/calibration.md). So every
p here compares the observed map's gene ranking with the gene rankings of the null maps of
the same map (BrainSMASH / spin, :mod:`rviflow.transcriptomics.nulls`), the "spatially constrained ensemble
null" of Fulcher et al.:

- score test: a set's score = mean gene score (r with the map, or PLS1 weight) of its genes
  minus the median over all genes of the same ranking; p_pos = (1 + #{null scores >= observed}) /
  (1 + n_null), p_neg likewise with <=, and the two-sided p = min(1, 2 min(p_pos, p_neg)).
  Fulcher et al. score a category by its mean gene score; centring it on all genes makes the test
  competitive (is the set more map-like than genes in general?), as GSEA is, so a shift shared by
  every gene (a map following overall expression level, or abagen's per-sample normalisation
  across genes) does not make every set significant; the median, not the mean, so that a few
  hundred genes following the map strongly do not make all others look depleted. Observed and
  null rankings are centred alike, so the null stays exact.
- over-representation in each tail: the number of the set's genes among the ``n_top`` highest
  (positive tail) and the ``n_top`` lowest (negative tail) genes, against the same count under
  every null ranking.

All null rankings are scored together: a sparse (sets x genes) membership matrix times the
(genes x nulls) score matrix, no per-null loop. GSEA prerank (gseapy) can still be added as a
labelled extra column (``gsea_p_gene_perm``, gene-label permutation: not calibrated for AHBA).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from rviflow.errors import InputError

DIRECTIONS = ("both", "positive", "negative")
RANK_BY = ("r", "pls1_weight")
ENRICHMENT_COLUMNS = ["term", "size", "mean_score", "score", "z", "p", "q", "p_pos", "p_neg", "top_genes",
                      "ora_pos_overlap", "ora_pos_p", "ora_pos_q", "ora_neg_overlap", "ora_neg_p", "ora_neg_q",
                      "direction", "rank_by", "n_null", "n_top", "gsea_nes", "gsea_p_gene_perm"]
NULL_COLUMNS = ["term", "null_index", "score"]


def read_gmt(path: str | Path, key: str = "transcriptomics.gene_sets") -> dict[str, list[str]]:
    """Gene sets of a GMT file (name, description, genes... per line) as {name: genes}.

    A missing or empty file raises InputError naming the config key and how to provide it.
    """
    path = Path(path) if path else None
    if path is None or not path.exists():
        raise InputError(f"gene-set file {path or '(none)'} not found (config {key}): run `bash setup.sh` "
                         "(or `rviflow setup-resources`) to build the built-in GO / KEGG / rviflow_themes GMTs "
                         f"offline, or set {key} to a GMT file of yours (e.g. from MSigDB)")
    sets: dict[str, list[str]] = {}
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or not parts[0]:
                if line.strip():
                    raise InputError(f"line {n} is not a GMT record (name, description, genes, tab-separated)",
                                     path=str(path))
                continue
            sets[parts[0]] = sorted({g for g in parts[2:] if g})
    if not sets:
        raise InputError(f"no gene sets in the file (config {key})", path=str(path))
    return sets


def filter_sets(gene_sets: dict[str, list[str]], universe, min_size: int, max_size: int) -> dict[str, list[str]]:
    """Sets restricted to ``universe`` with min_size <= size <= max_size."""
    uni = set(universe)
    out = {}
    for name, genes in gene_sets.items():
        g = [x for x in genes if x in uni]
        if min_size <= len(g) <= max_size:
            out[name] = g
    return out


def membership(sets: dict[str, list[str]], genes) -> sparse.csr_matrix:
    """(S, G) 0/1 sparse matrix: set s holds gene g (sets in dict order, genes in ``genes`` order)."""
    col = {g: i for i, g in enumerate(genes)}
    rows = np.repeat(np.arange(len(sets)), [len(v) for v in sets.values()])
    cols = np.fromiter((col[g] for v in sets.values() for g in v), dtype=np.int64, count=len(rows))
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sets), len(col)))


def tail_indicator(scores: np.ndarray, n_top: int, tail: str) -> np.ndarray:
    """(K, G) float32 0/1: the ``n_top`` highest (tail 'positive') or lowest genes of each row of
    ``scores`` (K, G)."""
    s = -scores if tail == "positive" else scores
    idx = np.argpartition(s, n_top - 1, axis=1)[:, :n_top]
    out = np.zeros(scores.shape, dtype=np.float32)
    np.put_along_axis(out, idx, 1.0, axis=1)
    return out


def exceedance_p(observed: np.ndarray, null: np.ndarray, tail: str) -> np.ndarray:
    """(1 + #{null >= observed}) / (1 + K) per row (tail 'positive'; <= for 'negative').

    observed (S,), null (S, K). Ties count as exceeding (conservative, e.g. integer overlaps).
    """
    eps = 1e-12 * np.maximum(1.0, np.abs(observed))[:, None]
    hits = (null >= observed[:, None] - eps) if tail == "positive" else (null <= observed[:, None] + eps)
    return (1 + hits.sum(1)) / (1 + null.shape[1])


def bh_q(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values; NaN p stay NaN (not counted)."""
    from rviflow.transcriptomics.association import bh_fdr

    p = np.asarray(p, float)
    q = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = bh_fdr(p[ok])
    return q


def null_rankings(expr: np.ndarray, null_maps: np.ndarray, rank_by: str = "r") -> np.ndarray:
    """(K, G) gene scores of every null map, computed as the observed ranking is.

    expr (R, G) regions x genes; null_maps (K, R). ``r`` = Pearson r of each gene with the null
    map; ``pls1_weight`` = PLS1 weights (of z-scored data: r / ||r||, exactly what
    :func:`rviflow.transcriptomics.association.pls_regression` gives for one response).
    """
    from rviflow.transcriptomics.association import correlate

    if rank_by not in RANK_BY:
        raise InputError(f"transcriptomics.rank_by {rank_by!r} has no ensemble null; use one of {', '.join(RANK_BY)}")
    r = np.atleast_2d(correlate(expr, null_maps))
    if rank_by == "pls1_weight":
        r = r / np.linalg.norm(r, axis=1, keepdims=True).clip(1e-300)
    return r


def ensemble_enrichment(observed: pd.Series, null_scores: np.ndarray, gene_sets: dict[str, list[str]],
                        direction: str = "both", min_size: int = 15, max_size: int = 500, n_top: int = 500,
                        chunk: int = 250) -> tuple[pd.DataFrame, np.ndarray]:
    """Each set's score and top-gene overlaps under the observed ranking vs under every null ranking.

    Parameters
    ----------
    observed : Series, gene -> score (higher = expression rising with the map), G genes
    null_scores : (K, G) the same score for each of K null maps, genes in ``observed``'s order
    gene_sets : {name: genes}; sets of min_size..max_size genes present in ``observed`` are tested
    direction : both | positive | negative: which tail(s) the reported p (and the ORA) test
    n_top : genes in each tail for the over-representation counts
    chunk : null rankings processed at once (memory: ~chunk x G x 12 bytes)

    Returns
    -------
    table : :data:`ENRICHMENT_COLUMNS` (gsea_* empty), sorted by p then |z|
    null_set_scores : (S, K) every set's score under every null ranking, rows in the table's order
    """
    if direction not in DIRECTIONS:
        raise InputError(f"transcriptomics.direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    obs = observed.to_numpy(np.float64)
    genes = observed.index.astype(str)
    null_scores = np.atleast_2d(np.asarray(null_scores, np.float64))
    if null_scores.shape[1] != len(obs) or not np.isfinite(obs).all() or not np.isfinite(null_scores).all():
        raise InputError(f"ensemble null: {null_scores.shape[1]} null gene scores for {len(obs)} genes, "
                         "or non-finite scores (every gene needs a score under every null map)")
    sets = filter_sets(gene_sets, genes, min_size, max_size)
    if not sets:
        return pd.DataFrame(columns=ENRICHMENT_COLUMNS), np.empty((0, len(null_scores)))
    n_top = int(min(n_top, len(obs) // 2))
    mem = membership(sets, genes)
    size = np.asarray(mem.sum(1)).ravel()
    tails = [t for t in ("positive", "negative") if direction in ("both", t)]
    mean_score = mem @ obs / size
    score = mean_score - np.median(obs)
    overlap = {t: mem @ tail_indicator(obs[None, :], n_top, t)[0] for t in tails}
    k = len(null_scores)
    null_set = np.empty((len(sets), k))
    null_overlap = {t: np.empty((len(sets), k), dtype=np.float32) for t in tails}
    for a in range(0, k, chunk):
        block = null_scores[a:a + chunk]
        null_set[:, a:a + len(block)] = (mem @ block.T) / size[:, None] - np.median(block, axis=1)[None, :]
        for t in tails:
            null_overlap[t][:, a:a + len(block)] = mem @ tail_indicator(block, n_top, t).T
    p_pos, p_neg = exceedance_p(score, null_set, "positive"), exceedance_p(score, null_set, "negative")
    p = {"both": np.minimum(1.0, 2 * np.minimum(p_pos, p_neg)), "positive": p_pos, "negative": p_neg}[direction]
    sd = null_set.std(1, ddof=1)
    z = (score - null_set.mean(1)) / np.where(sd > 0, sd, np.inf)
    out = pd.DataFrame(dict(term=list(sets), size=size.astype(int), mean_score=mean_score, score=score, z=z,
                            p=p, q=bh_q(p), p_pos=p_pos, p_neg=p_neg))
    order = {g: s for g, s in zip(genes, obs)}
    out["top_genes"] = [";".join(sorted(v, key=lambda g: -order[g] if zz >= 0 else order[g])[:10])
                        for v, zz in zip(sets.values(), z)]
    for t, tag in (("positive", "pos"), ("negative", "neg")):
        if t in tails:
            pt = exceedance_p(overlap[t], null_overlap[t], "positive")
            out[f"ora_{tag}_overlap"] = overlap[t].astype(int)
            out[f"ora_{tag}_p"], out[f"ora_{tag}_q"] = pt, bh_q(pt)
    out = out.assign(direction=direction, n_null=k, n_top=n_top)
    out["_abs"] = -out["z"].abs()
    out = out.sort_values(["p", "_abs", "term"], kind="mergesort")
    return out.drop(columns="_abs").reset_index(drop=True).reindex(columns=ENRICHMENT_COLUMNS), null_set[out.index]


def prerank(ranking: pd.Series, gene_sets: dict[str, list[str]], n_perm: int = 1000, seed: int = 0,
            min_size: int = 15, max_size: int = 500, threads: int = 1) -> pd.DataFrame:
    """GSEA prerank (gseapy) of ``ranking`` with gene-label permutation: NOT calibrated for AHBA maps
    (kept only as the labelled extra columns gsea_nes / gsea_p_gene_perm).

    Ties in the scores are broken by gene name so the result does not depend on input order.
    Returns term, es, nes, p, q, fwer_p, size, leading_edge_genes (';'-joined), by p then |NES|.
    """
    import gseapy

    rnk = ranking.dropna()
    rnk = rnk[~rnk.index.duplicated()]
    order = np.lexsort((rnk.index.to_numpy(str), -rnk.to_numpy(float)))
    rnk = rnk.iloc[order]
    sets = filter_sets(gene_sets, rnk.index, min_size, max_size)
    if not sets:
        return pd.DataFrame(columns=["term", "es", "nes", "p", "q", "fwer_p", "size", "leading_edge_genes"])
    res = gseapy.prerank(rnk=rnk, gene_sets=sets, permutation_num=n_perm, seed=seed, min_size=min_size,
                         max_size=max_size, threads=threads, outdir=None, no_plot=True, verbose=False).res2d
    out = pd.DataFrame(dict(
        term=res["Term"].astype(str), es=res["ES"].astype(float), nes=res["NES"].astype(float),
        p=res["NOM p-val"].astype(float), q=res["FDR q-val"].astype(float), fwer_p=res["FWER p-val"].astype(float),
        size=[len(sets[t]) for t in res["Term"]],
        leading_edge_genes=res["Lead_genes"].astype(str)))
    out["_abs"] = -out["nes"].abs()
    return out.sort_values(["p", "_abs", "term"], kind="mergesort").drop(columns="_abs").reset_index(drop=True)


def enrichment(genes_table: pd.DataFrame, expr: pd.DataFrame, null_maps: pd.DataFrame,
               gene_sets: dict[str, list[str]], rank_by: str = "r", direction: str = "both", min_size: int = 15,
               max_size: int = 500, n_top: int = 500, n_perm: int = 0, seed: int = 0, threads: int = 1,
               n_keep: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ensemble-null enrichment of one map's gene ranking (plus gseapy's prerank if ``n_perm`` > 0).

    Parameters
    ----------
    genes_table : a <map>_genes.tsv table (gene + the ``rank_by`` column)
    expr : regions x genes expression (the regions the map was analysed on, at least)
    null_maps : null maps x regions (the <map>_null_maps.tsv the gene association used)

    Returns
    -------
    table : :data:`ENRICHMENT_COLUMNS`
    nulls : long table (:data:`NULL_COLUMNS`) of the null set scores of the ``n_keep`` best sets
    """
    if rank_by not in RANK_BY:
        raise InputError(f"transcriptomics.rank_by {rank_by!r} has no ensemble null; use one of {', '.join(RANK_BY)}")
    regions = [c for c in null_maps.columns if c in expr.index]
    if len(regions) != len(null_maps.columns):
        missing = [c for c in null_maps.columns if c not in expr.index]
        raise InputError(f"null maps name region(s) without expression: {', '.join(map(str, missing[:5]))}")
    genes = [g for g in expr.columns.astype(str)]
    observed = genes_table.drop_duplicates("gene").set_index("gene")[rank_by].astype(float).reindex(genes)
    if observed.isna().any():
        raise InputError(f"genes table lacks {rank_by} for {int(observed.isna().sum())} expression genes "
                         f"(e.g. {observed.index[observed.isna()][0]}): rerun the gene association")
    nulls = null_rankings(expr.loc[regions].to_numpy(np.float64), null_maps.to_numpy(np.float64), rank_by)
    table, null_set = ensemble_enrichment(observed, nulls, gene_sets, direction, min_size, max_size, n_top)
    table["rank_by"] = rank_by
    if n_perm > 0 and len(table):
        pre = prerank(observed, gene_sets, n_perm, seed, min_size, max_size, threads).set_index("term")
        table["gsea_nes"] = table["term"].map(pre["nes"])
        table["gsea_p_gene_perm"] = table["term"].map(pre["p"])
    keep = min(n_keep, len(table))
    long = pd.DataFrame(dict(term=np.repeat(table["term"].to_numpy()[:keep], null_set.shape[1]),
                             null_index=np.tile(np.arange(null_set.shape[1]), keep),
                             score=null_set[:keep].ravel()), columns=NULL_COLUMNS)
    return table, long


def run_enrichment(genes_tsv: str, expression_tsv: str, null_maps_tsv: str, gmt: str, out: str, out_nulls: str,
                   config_key: str = "transcriptomics.gene_sets", **options) -> None:
    """Read the inputs of one map x collection, run :func:`enrichment`, write both tables."""
    from rviflow.transcriptomics.expression import read_expression
    from rviflow.io.regional import write_tsv_atomic

    genes = pd.read_csv(genes_tsv, sep="\t", na_values="n/a")
    expr = read_expression(expression_tsv)
    null_maps = pd.read_csv(null_maps_tsv, sep="\t", index_col="null_index")
    null_maps = null_maps.drop(columns=[c for c in null_maps.columns if c.startswith("pls1_")])
    table, nulls = enrichment(genes, expr, null_maps, read_gmt(gmt, config_key), **options)
    write_tsv_atomic(table, out)
    write_tsv_atomic(nulls, out_nulls)
