"""Snakemake script: RVI / AVI per subject and measure, discrimination, symptoms, EPs, frozen references."""
from rviflow.cohort.stats import CohortSpec, run_rvi
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        spec = CohortSpec.from_config(sm.input.participants, sm.params.groups, sm.params.covariates, sm.params.site_column,
                                      sm.params.min_per_group, sm.params.symptoms)
        run_rvi(list(sm.input.tables), list(sm.params.measures), spec, sm.params.folds, sm.params.seed,
                sm.params.within_site, dict(sm.params.expected_patterns), list(sm.input.combat) or None, sm.output.rvi,
                sm.output.summary, sm.output.symptoms, list(sm.output.patterns), list(sm.output.references),
                sm.params.n_boot, list(sm.input.raw) or None, sm.params.min_per_site, sm.params.n_perm)
