"""Snakemake script: gene-map correlations vs spatial null maps + PLS (rviflow.transcriptomics.association)."""
from rviflow.pipeline.runner import run_cohort

sm, p = snakemake, snakemake.params  # noqa: F821 (injected by Snakemake)
run_cohort(sm, "rviflow.transcriptomics.association:run_gene_association", map_name=sm.wildcards.map,
           map_path=sm.input.map, expression_tsv=sm.input.expression, atlas_image=sm.input.atlas_image,
           atlas_labels=sm.input.atlas_labels, out_genes=sm.output.genes, out_pls=sm.output.pls,
           cortex_only=p.cortex_only, left_only=p.left_only, null_method=p.null_method, n_nulls=p.n_nulls,
           n_components=p.pls_components, n_boot=p.n_boot, seed=p.seed, out_null_maps=sm.output.null_maps)
