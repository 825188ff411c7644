"""Snakemake script: hemisphere-averaged effect sizes (ENIGMA) + functional / structural |d| ratio."""
from rviflow.cohort_stats import CohortSpec, run_effect_summaries

sm = snakemake  # noqa: F821 (injected by Snakemake)
spec = CohortSpec.from_config(sm.input.participants, sm.params.groups, sm.params.covariates, sm.params.site_column,
                              sm.params.min_per_group)
run_effect_summaries(list(sm.input.tables), list(sm.params.measures), spec, list(sm.params.functional),
                     list(sm.params.structural), sm.params.n_boot, sm.params.seed, sm.output.hemi, sm.output.ratio)
