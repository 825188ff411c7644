"""Snakemake script: ComBat (neuroHarmonize) of one measure; harmonised table + saved model."""
from rviflow.cohort.stats import CohortSpec
from rviflow.pipeline.runner import run_cohort

sm, p = snakemake, snakemake.params  # noqa: F821 (injected by Snakemake)
run_cohort(sm, "rviflow.cohort.stats:run_harmonize", table=sm.input.table, measure=sm.wildcards.measure,
           spec=CohortSpec.from_config(sm.input.participants, **p.cohort), min_per_site=p.min_per_site,
           out_table=sm.output.table, out_model=sm.output.model)
