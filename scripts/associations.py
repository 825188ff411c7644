"""Snakemake script: region-level associations with participant variables (group/associations.tsv;
rviflow.cohort.designs)."""
from rviflow.cohort.designs import run_associations
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        p = sm.params
        run_associations(list(sm.input.tables), list(p.measures), sm.input.participants, dict(p.spec), list(p.analyses),
                         dict(p.design), p.bids_dir, sm.output[0], sm.input.participants_raw)
