"""Snakemake script: a batch of scans' per-scan steps in one job (rviflow.pipeline.batches.run_batch)."""
from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
table = run(sm, "rviflow.pipeline.batches:run_batch", plan=list(sm.params.plan), record=sm.output[0],
            remove=list(sm.params.intermediates), threads=sm.threads)
with open(sm.log[0], "a") as log:
    log.write(table.to_csv(sep="\t", index=False))
