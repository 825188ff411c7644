"""Snakemake script: a batch of scans' per-scan steps in one job (rviflow.batches.run_batch)."""
from rviflow.batches import run_batch

sm = snakemake  # noqa: F821 (injected by Snakemake)
table = run_batch(list(sm.params.plan), sm.output[0], list(sm.params.intermediates))
with open(sm.log[0], "a") as log:
    log.write(table.to_csv(sep="\t", index=False))
