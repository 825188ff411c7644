"""Snakemake script: RVI / AVI per subject and measure, discrimination, symptoms, EPs, frozen references."""
from rviflow.cohort.stats import CohortSpec
from rviflow.pipeline.runner import run_cohort

sm, p = snakemake, snakemake.params  # noqa: F821 (injected by Snakemake)
run_cohort(sm, "rviflow.cohort.stats:run_rvi", tables=list(sm.input.tables), measures=list(p.measures),
           spec=CohortSpec.from_config(sm.input.participants, **p.cohort, symptoms=p.symptoms), folds=p.folds,
           seed=p.seed, within_site=p.within_site, patterns=dict(p.expected_patterns),
           combat_models=list(sm.input.combat) or None, raw_tables=list(sm.input.raw) or None,
           out_rvi=sm.output.rvi, out_summary=sm.output.summary, out_symptoms=sm.output.symptoms,
           out_patterns=list(sm.output.patterns), out_references=list(sm.output.references), n_boot=p.n_boot,
           min_per_site=p.min_per_site, n_perm=p.n_perm)
