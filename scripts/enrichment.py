"""Snakemake script: GSEA prerank + over-representation of a gene ranking on one GMT (rviflow.enrichment)."""
import contextlib

import pandas as pd

from rviflow.enrichment import enrichment, read_gmt
from rviflow.regional import write_tsv_atomic

sm = snakemake  # noqa: F821 (injected by Snakemake)
with open(sm.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    p = sm.params
    genes = pd.read_csv(sm.input.genes, sep="\t", na_values="n/a")
    sets = read_gmt(sm.input.gmt, p.config_key)
    write_tsv_atomic(enrichment(genes, sets, p.rank_by, p.n_perm, p.seed, p.min_size, p.max_size, p.n_top, sm.threads),
                     sm.output[0])
