"""Snakemake script: stack per-scan parcel rows into group/parcels_<measure>.tsv + step QC."""
from rviflow.bids_io import write_tsv
from rviflow.cohort import gather_parcels, qc_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
files = sm.params.files  # the per-scan files (the inputs, or in batch mode the batch records' scans)
steps = {k.removesuffix("_json"): list(v) for k, v in files.items() if k not in ("tsv", "json") and len(v)}
table, qc = gather_parcels(list(files["tsv"]), list(files["json"]), steps,
                           sm.params.get("parcellate_step", "parcellate"))
write_tsv(table, sm.output.table)
write_tsv(qc_table(qc), sm.output.qc)
