"""Snakemake script: hemisphere-averaged effect sizes (ENIGMA) + functional / structural |d| ratio."""
from rviflow.cohort.stats import CohortSpec, run_effect_summaries
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        spec = CohortSpec.from_config(sm.input.participants, sm.params.groups, sm.params.covariates, sm.params.site_column,
                                      sm.params.min_per_group)
        run_effect_summaries(list(sm.input.tables), list(sm.params.measures), spec, list(sm.params.functional),
                             list(sm.params.structural), sm.params.n_boot, sm.params.seed, sm.output.hemi, sm.output.ratio)
