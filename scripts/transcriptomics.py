"""Snakemake script: gene-map correlations vs spatial null maps + PLS (rviflow.transcriptomics.association)."""
import contextlib

from rviflow.transcriptomics.association import run_gene_association

sm = snakemake  # noqa: F821 (injected by Snakemake)
with open(sm.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    p = sm.params
    run_gene_association(sm.wildcards.map, sm.input.map, sm.input.expression, sm.input.atlas_image,
                         sm.input.atlas_labels, sm.output.genes, sm.output.pls, p.cortex_only, p.left_only,
                         p.null_method, p.n_nulls, p.pls_components, p.n_boot, p.seed,
                         out_null_maps=sm.output.null_maps)
