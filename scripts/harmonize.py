"""Snakemake script: ComBat (neuroHarmonize) of one measure; harmonised table + saved model."""
from rviflow.cohort.stats import CohortSpec, run_harmonize
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        spec = CohortSpec.from_config(sm.input.participants, sm.params.groups, sm.params.covariates, sm.params.site_column,
                                      sm.params.min_per_group)
        run_harmonize(sm.input.table, sm.wildcards.measure, spec, sm.params.min_per_site, sm.output.table, sm.output.model)
