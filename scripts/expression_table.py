"""Snakemake script: a ready regions x genes table mapped onto the atlas (rviflow.transcriptomics.expression)."""
from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, "rviflow.transcriptomics.expression:import_expression_table", table=sm.input.table,
    atlas_labels=sm.input.atlas_labels, out=sm.output[0])
