"""Snakemake script: stack per-scan parcel rows into group/parcels_<measure>.tsv + step QC."""
from rviflow.cohort import gather_parcels, qc_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
steps = {k.removesuffix("_json"): list(sm.input[k]) for k in sm.input.keys()
         if k not in ("tsv", "json") and len(sm.input[k])}
table, qc = gather_parcels(list(sm.input.tsv), list(sm.input.json), steps)
label = sm.params.get("parcellate_step", "parcellate")  # e.g. parcellate_cbf beside ReHo's parcellate
qc = [{**r, "step": label if r["step"] == "parcellate" else r["step"]} for r in qc]
table.to_csv(sm.output.table, sep="\t", index=False, na_rep="n/a")
qc_table(qc).to_csv(sm.output.qc, sep="\t", index=False)
