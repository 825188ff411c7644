"""Snakemake script: gene-set enrichment of a map's gene ranking against its null maps' rankings
(ensemble null; rviflow.transcriptomics.enrichment)."""
import contextlib

from rviflow.transcriptomics.enrichment import run_enrichment

sm = snakemake  # noqa: F821 (injected by Snakemake)
with open(sm.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    p = sm.params
    run_enrichment(sm.input.genes, sm.input.expression, sm.input.null_maps, sm.input.gmt, sm.output.table,
                   sm.output.nulls, p.config_key, rank_by=p.rank_by, direction=p.direction, min_size=p.min_size,
                   max_size=p.max_size, n_top=p.n_top, n_perm=p.n_perm, seed=p.seed, threads=sm.threads)
