"""Snakemake script: gene-set enrichment of a map's gene ranking against its null maps' rankings
(ensemble null; rviflow.transcriptomics.enrichment)."""
from rviflow.pipeline.runner import run_cohort

sm, p = snakemake, snakemake.params  # noqa: F821 (injected by Snakemake)
run_cohort(sm, "rviflow.transcriptomics.enrichment:run_enrichment", genes_tsv=sm.input.genes,
           expression_tsv=sm.input.expression, null_maps_tsv=sm.input.null_maps, gmt=sm.input.gmt, out=sm.output.table,
           out_nulls=sm.output.nulls, config_key=p.config_key, rank_by=p.rank_by, direction=p.direction,
           min_size=p.min_size, max_size=p.max_size, n_top=p.n_top, n_perm=p.n_perm, seed=p.seed, threads=sm.threads)
