"""Snakemake script: cortical thickness (FreeSurfer stats or an ENIGMA table) -> group/parcels_thickness.tsv."""
from rviflow.cohort.stats import run_thickness
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        run_thickness(sm.params.source, sm.params.path, sm.input.participants, sm.input.atlas_labels, sm.output.table,
                      sm.output.qc, sm.log[0])
