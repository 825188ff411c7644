"""Snakemake script: paired regional change and change vs symptom change (group/change.tsv,
group/change_associations.tsv; rviflow.cohort.designs)."""
from rviflow.pipeline.runner import run_cohort

sm = snakemake  # noqa: F821 (injected by Snakemake)
p = sm.params
run_cohort(sm, "rviflow.cohort.designs:run_change", tables=list(sm.input.tables), measures=list(p.measures),
           participants_tsv=sm.input.participants, spec=dict(p.spec), design=dict(p.design), bids_dir=p.bids_dir,
           combine_runs=p.combine_runs, out_change=sm.output.change, out_assoc=sm.output.associations)
