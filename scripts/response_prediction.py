"""Snakemake script: baseline regional values predicting the symptom response, nested CV with
permutation p (group/response_prediction.tsv; rviflow.cohort.designs)."""
from rviflow.cohort.designs import run_response_prediction
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        p = sm.params
        run_response_prediction(list(sm.input.tables), list(p.measures), sm.input.participants, dict(p.spec),
                                dict(p.design), p.bids_dir, p.combine_runs, sm.output[0])
