"""Snakemake script: region-level associations with participant variables (group/associations.tsv;
rviflow.cohort.designs)."""
from rviflow.pipeline.runner import run_cohort

sm = snakemake  # noqa: F821 (injected by Snakemake)
p = sm.params
run_cohort(sm, "rviflow.cohort.designs:run_associations", tables=list(sm.input.tables), measures=list(p.measures),
           participants_tsv=sm.input.participants, spec=dict(p.spec), items=list(p.analyses), design=dict(p.design),
           bids_dir=p.bids_dir, out=sm.output[0], participants_raw=sm.input.participants_raw)
