"""Gene-set enrichment of a gene ranking, with local GMT files only (no Enrichr or MSigDB download).

- GSEA prerank (gseapy) on the whole ranking (e.g. genes by r with the imaging map): NES,
  nominal p, FDR q, leading-edge genes; permutations seeded.
- Over-representation (gseapy enrich, hypergeometric, background = the ranked genes) of the top
  genes of the ranking.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError

ENRICHMENT_COLUMNS = ["term", "nes", "p", "q", "leading_edge_genes", "size", "es", "fwer_p",
                      "ora_overlap", "ora_p", "ora_q", "ora_odds_ratio", "ora_genes", "n_perm"]


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


def prerank(ranking: pd.Series, gene_sets: dict[str, list[str]], n_perm: int = 1000, seed: int = 0,
            min_size: int = 15, max_size: int = 500, threads: int = 1) -> pd.DataFrame:
    """GSEA prerank of ``ranking`` (gene -> score, higher = more map-like) over ``gene_sets``.

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


def over_representation(genes, background, gene_sets: dict[str, list[str]], min_size: int = 15,
                        max_size: int = 500) -> pd.DataFrame:
    """Hypergeometric over-representation of ``genes`` in each set, within ``background``.

    Returns term, ora_overlap ("k/n"), ora_p, ora_q (BH), ora_odds_ratio, ora_genes (';'-joined).
    """
    import gseapy

    cols = ["term", "ora_overlap", "ora_p", "ora_q", "ora_odds_ratio", "ora_genes"]
    sets = filter_sets(gene_sets, background, min_size, max_size)
    genes = [g for g in genes if g in set(background)]
    if not sets or not genes:
        return pd.DataFrame(columns=cols)
    res = gseapy.enrich(gene_list=list(genes), gene_sets=sets, background=list(background), outdir=None,
                        no_plot=True, cutoff=1.0, verbose=False).results
    if res is None or res.empty:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(dict(term=res["Term"].astype(str), ora_overlap=res["Overlap"].astype(str),
                             ora_p=res["P-value"].astype(float), ora_q=res["Adjusted P-value"].astype(float),
                             ora_odds_ratio=res["Odds Ratio"].astype(float), ora_genes=res["Genes"].astype(str)))


def enrichment(genes_table: pd.DataFrame, gene_sets: dict[str, list[str]], rank_by: str = "r", n_perm: int = 1000,
               seed: int = 0, min_size: int = 15, max_size: int = 500, n_top: int = 500,
               threads: int = 1) -> pd.DataFrame:
    """Prerank on ``genes_table[rank_by]`` plus over-representation of its ``n_top`` highest genes.

    genes_table: a <map>_genes.tsv table (gene + the ranking column). Columns: ENRICHMENT_COLUMNS.
    """
    ranking = genes_table.set_index("gene")[rank_by].astype(float)
    pre = prerank(ranking, gene_sets, n_perm, seed, min_size, max_size, threads)
    top = ranking.dropna().sort_values(ascending=False, kind="mergesort").index[:n_top]
    ora = over_representation(top, ranking.dropna().index, gene_sets, min_size, max_size)
    out = pre.merge(ora, on="term", how="left")
    out["n_perm"] = n_perm  # recorded with the result: p and q resolution is 1 / n_perm
    return out.reindex(columns=ENRICHMENT_COLUMNS)
