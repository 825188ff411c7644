"""Snakemake script: cortical thickness (FreeSurfer stats or an ENIGMA table) -> group/parcels_thickness.tsv."""
from rviflow.pipeline.runner import run_cohort

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_cohort(sm, "rviflow.cohort.stats:run_thickness", source=sm.params.source, path=sm.params.path,
           participants_tsv=sm.input.participants, atlas_labels=sm.input.atlas_labels, out_table=sm.output.table,
           out_qc=sm.output.qc)
