"""Snakemake script: cortical thickness (FreeSurfer stats or an ENIGMA table) -> group/parcels_thickness.tsv."""
from rviflow.cohort_stats import run_thickness

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_thickness(sm.params.source, sm.params.path, sm.input.participants, sm.input.atlas_labels, sm.output.table,
              sm.output.qc, sm.log[0])
