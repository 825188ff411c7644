"""Snakemake script: one scan's ReHo maps (rviflow.pipeline.steps.reho_step)."""
from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, "rviflow.pipeline.steps:reho_step", bold=sm.input.bold, bold_json=sm.input.bold_json, mask=sm.input.mask,
    outputs={k: sm.output[k] for k in ("reho", "mreho", "zreho", "mask", "json")}, work_dir=sm.params.work_dir,
    participant_id=sm.params.participant_id, options=dict(sm.params.options), on_error=sm.params.on_error,
    log=sm.log[0], threads=sm.threads)
