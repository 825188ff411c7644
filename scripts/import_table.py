"""Snakemake script: a user-supplied regional table (config cohort.tables) -> group/parcels_<measure>.tsv."""
from rviflow.cohort_stats import run_import_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_import_table(sm.input.table, sm.wildcards.measure, sm.input.participants, sm.output.table, sm.output.qc,
                 sm.log[0])
