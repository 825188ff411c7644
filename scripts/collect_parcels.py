"""Snakemake script: per-scan parcel rows -> group/parcels_<measure>_scans.tsv (one row per scan,
with run / acq) and group/parcels_<measure>.tsv (one row per subject: its scans combined by
config combine_runs) + step QC."""
from rviflow.io.bids import write_tsv
from rviflow.cohort.tables import combine_parcels, gather_parcels, qc_table
from rviflow.pipeline.outcome import cohort_rule

sm = snakemake  # noqa: F821 (injected by Snakemake)
with cohort_rule(sm.rule, sm.input, sm.output, sm.log[0] if sm.log else None) as go:
    if go:
        files = sm.params.files  # the per-scan files (the inputs, or in batch mode the batch records' scans)
        steps = {k.removesuffix("_json"): list(v) for k, v in files.items() if k not in ("tsv", "json") and len(v)}
        step = sm.params.get("parcellate_step", "parcellate")
        scans, qc = gather_parcels(list(files["tsv"]), list(files["json"]), steps, step)
        table, combined = combine_parcels(scans, sm.params.get("combine_runs", "mean"), f"combine_{sm.rule.removeprefix('collect_')}",
                                          sm.params.get("baseline_session", ""))
        if "scans" in sm.output.keys():
            write_tsv(scans, sm.output.scans)
        write_tsv(table, sm.output.table)
        write_tsv(qc_table(qc + combined), sm.output.qc)
