"""Snakemake script: a batch of scans' per-scan steps in one job (rviflow.pipeline.batches.run_batch),
or (params.per_scan) one scan's BOLD chain in one job, whose declared outputs are the scan's files."""
from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
per_scan = bool(sm.params.get("per_scan", False))
table = run(sm, "rviflow.pipeline.batches:run_batch", plan=list(sm.params.plan), record=None if per_scan else sm.output[0],
            remove=list(sm.params.intermediates), threads=sm.threads, keep_finished=not per_scan)
with open(sm.log[0], "a") as log:
    log.write(table.to_csv(sep="\t", index=False))
