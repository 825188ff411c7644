"""Snakemake script: co-localisation of effect-size maps (spatial null + label permutation) + regional coupling."""
from rviflow.cohort.stats import CohortSpec
from rviflow.pipeline.runner import run_cohort

sm, p = snakemake, snakemake.params  # noqa: F821 (injected by Snakemake)
run_cohort(sm, "rviflow.cohort.stats:run_colocalisation", effects_tsv=sm.input.effects,
           atlas_image=sm.input.atlas_image, atlas_labels=sm.input.atlas_labels, tables=list(sm.input.tables),
           measures=list(p.measures), spec=CohortSpec.from_config(sm.input.participants, **p.cohort),
           null_method=p.null_method, n_null=p.n_nulls, seed=p.seed, n_perm=p.n_perm, out_coloc=sm.output.coloc,
           out_null=sm.output.null, out_coupling=sm.output.coupling)
