"""Snakemake script: covariate-adjusted effect sizes of every measure (rviflow.cohort.tables)."""
from rviflow.pipeline.runner import run_cohort

sm = snakemake  # noqa: F821 (injected by Snakemake)
g = sm.params.groups
run_cohort(sm, "rviflow.cohort.tables:run_effect_sizes", tables=list(sm.input.tables), measures=list(sm.params.measures),
           participants_tsv=sm.input.participants, group_column=g["column"], case_label=g["case"],
           control_label=g["control"], covariates=list(sm.params.covariates),
           site_column=sm.params.site_column or None, min_per_group=sm.params.min_per_group,
           out_effects=sm.output.effects, out_qc=sm.output.qc)
