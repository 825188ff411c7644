"""Snakemake script: stack per-scan parcel rows into group/parcels_<measure>.tsv + step QC."""
from rviflow.bids_io import write_tsv
from rviflow.cohort import gather_parcels, qc_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
steps = {k.removesuffix("_json"): list(sm.input[k]) for k in sm.input.keys()
         if k not in ("tsv", "json") and len(sm.input[k])}
table, qc = gather_parcels(list(sm.input.tsv), list(sm.input.json), steps,
                           sm.params.get("parcellate_step", "parcellate"))
write_tsv(table, sm.output.table)
write_tsv(qc_table(qc), sm.output.qc)
