"""Snakemake script: hemisphere-averaged effect sizes (ENIGMA) + functional / structural |d| ratio."""
from rviflow.cohort.stats import CohortSpec
from rviflow.pipeline.runner import run_cohort

sm, p = snakemake, snakemake.params  # noqa: F821 (injected by Snakemake)
run_cohort(sm, "rviflow.cohort.stats:run_effect_summaries", tables=list(sm.input.tables), measures=list(p.measures),
           spec=CohortSpec.from_config(sm.input.participants, **p.cohort), functional=list(p.functional),
           structural=list(p.structural), n_boot=p.n_boot, seed=p.seed, out_hemi=sm.output.hemi,
           out_ratio=sm.output.ratio)
