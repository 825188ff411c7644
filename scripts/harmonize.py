"""Snakemake script: ComBat (neuroHarmonize) of one measure; harmonised table + saved model."""
from rviflow.cohort_stats import CohortSpec, run_harmonize

sm = snakemake  # noqa: F821 (injected by Snakemake)
spec = CohortSpec.from_config(sm.input.participants, sm.params.groups, sm.params.covariates, sm.params.site_column,
                              sm.params.min_per_group)
run_harmonize(sm.input.table, sm.wildcards.measure, spec, sm.params.min_per_site, sm.output.table, sm.output.model)
