"""Snakemake script: per-scan parcel rows -> group/parcels_<measure>_scans.tsv (one row per scan,
with run / acq) and group/parcels_<measure>.tsv (one row per subject: its scans combined by
config combine_runs) + step QC (rviflow.cohort.tables.collect_parcels)."""
from rviflow.pipeline.runner import run_cohort

sm = snakemake  # noqa: F821 (injected by Snakemake)
# params.files: the per-scan files (the inputs, or in batch mode the batch records' scans)
run_cohort(sm, "rviflow.cohort.tables:collect_parcels", files={k: list(v) for k, v in sm.params.files.items()},
           out_table=sm.output.table, out_qc=sm.output.qc,
           out_scans=sm.output.scans if "scans" in sm.output.keys() else None,
           parcellate_step=sm.params.get("parcellate_step", "parcellate"),
           combine_runs=sm.params.get("combine_runs", "mean"), combine_step=f"combine_{sm.rule.removeprefix('collect_')}",
           session=sm.params.get("baseline_session", ""))
