"""Snakemake script: co-localisation of effect-size maps (spatial null + label permutation) + regional coupling."""
from rviflow.cohort.stats import CohortSpec, run_colocalisation
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        spec = CohortSpec.from_config(sm.input.participants, sm.params.groups, sm.params.covariates, sm.params.site_column,
                                      sm.params.min_per_group)
        run_colocalisation(sm.input.effects, sm.input.atlas_image, sm.input.atlas_labels, list(sm.input.tables),
                           list(sm.params.measures), spec, sm.params.null_method, sm.params.n_nulls, sm.params.seed,
                           sm.output.coloc, sm.output.null, sm.output.coupling, n_perm=sm.params.n_perm)
