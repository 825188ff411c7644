"""Snakemake script: group/qc.tsv from discovery problems, per-step QC and cohort inclusion."""
from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, "rviflow.cohort.tables:write_qc_table", discovery_rows=list(sm.params.discovery),
    step_tables=[*sm.input.steps, sm.input.cohort], out=sm.output[0])
