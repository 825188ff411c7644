"""Snakemake script: group/qc.tsv from discovery problems, per-step QC and cohort inclusion."""
from rviflow.cohort.tables import write_qc_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
write_qc_table(list(sm.params.discovery), [*sm.input.steps, sm.input.cohort], sm.output[0])
