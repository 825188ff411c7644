"""Snakemake script: stack per-scan parcel rows into group/parcels_<measure>.tsv + step QC."""
from rviflow.cohort import gather_parcels, qc_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
steps = {k.removesuffix("_json"): list(sm.input[k]) for k in sm.input.keys() if k not in ("tsv", "json")}
table, qc = gather_parcels(list(sm.input.tsv), list(sm.input.json), steps)
table.to_csv(sm.output.table, sep="\t", index=False, na_rep="n/a")
qc_table(qc).to_csv(sm.output.qc, sep="\t", index=False)
