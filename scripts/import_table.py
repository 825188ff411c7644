"""Snakemake script: a user-supplied regional table (config cohort.tables) -> group/parcels_<measure>.tsv."""
from rviflow.cohort.stats import run_import_table
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        run_import_table(sm.input.table, sm.wildcards.measure, sm.input.participants, sm.output.table, sm.output.qc,
                         sm.log[0], session=sm.params.get("session", ""))
