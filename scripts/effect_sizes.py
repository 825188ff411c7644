"""Snakemake script: covariate-adjusted effect sizes of every measure (rviflow.cohort.tables)."""
from rviflow.cohort.tables import run_effect_sizes
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        g = sm.params.groups
        run_effect_sizes(list(sm.input.tables), list(sm.params.measures), sm.input.participants, g["column"], g["case"],
                         g["control"], list(sm.params.covariates), sm.params.site_column or None, sm.params.min_per_group,
                         sm.output.effects, sm.output.qc, sm.log[0])
