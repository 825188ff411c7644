"""Snakemake script: nested cross-validated classifiers / SVR on regional features (group/prediction.tsv)."""
from rviflow.cohort.stats import CohortSpec
from rviflow.pipeline.runner import run_cohort

sm, p = snakemake, snakemake.params  # noqa: F821 (injected by Snakemake)
run_cohort(sm, "rviflow.cohort.stats:run_prediction", tables=list(sm.input.tables), measures=list(p.measures),
           spec=CohortSpec.from_config(sm.input.participants, **p.cohort, symptoms=p.symptoms),
           harmonize=p.harmonize, min_per_site=p.min_per_site, outer_folds=p.outer_folds,
           inner_folds=p.inner_folds, seed=p.seed, out=sm.output[0])
