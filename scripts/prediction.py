"""Snakemake script: nested cross-validated classifiers / SVR on regional features (group/prediction.tsv)."""
from rviflow.cohort.stats import CohortSpec, run_prediction
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        spec = CohortSpec.from_config(sm.input.participants, sm.params.groups, sm.params.covariates, sm.params.site_column,
                                      sm.params.min_per_group, sm.params.symptoms)
        run_prediction(list(sm.input.tables), list(sm.params.measures), spec, sm.params.harmonize, sm.params.min_per_site,
                       sm.params.outer_folds, sm.params.inner_folds, sm.params.seed, sm.output[0])
