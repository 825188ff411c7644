"""Snakemake script: a user-supplied regional table (config cohort.tables) -> group/parcels_<measure>.tsv."""
from rviflow.pipeline.runner import run_cohort

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_cohort(sm, "rviflow.cohort.stats:run_import_table", table=sm.input.table, measure=sm.wildcards.measure,
           participants_tsv=sm.input.participants, out_table=sm.output.table, out_qc=sm.output.qc,
           session=sm.params.get("session", ""))
