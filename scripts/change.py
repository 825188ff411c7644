"""Snakemake script: paired regional change and change vs symptom change (group/change.tsv,
group/change_associations.tsv; rviflow.cohort.designs)."""
from rviflow.cohort.designs import run_change
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        p = sm.params
        run_change(list(sm.input.tables), list(p.measures), sm.input.participants, dict(p.spec), dict(p.design),
                   p.bids_dir, p.combine_runs, sm.output.change, sm.output.associations)
