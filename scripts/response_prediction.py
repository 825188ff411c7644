"""Snakemake script: baseline regional values predicting the symptom response, nested CV with
permutation p (group/response_prediction.tsv; rviflow.cohort.designs)."""
from rviflow.pipeline.runner import run_cohort

sm = snakemake  # noqa: F821 (injected by Snakemake)
p = sm.params
run_cohort(sm, "rviflow.cohort.designs:run_response_prediction", tables=list(sm.input.tables),
           measures=list(p.measures), participants_tsv=sm.input.participants, spec=dict(p.spec), design=dict(p.design),
           bids_dir=p.bids_dir, combine_runs=p.combine_runs, out=sm.output[0])
