"""Snakemake script: one scan's confound regression (+ band-pass) (rviflow.pipeline.steps.denoise_step)."""
from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, "rviflow.pipeline.steps:denoise_step", bold=sm.input.bold, mask=sm.input.mask, out_bold=sm.output.bold,
    out_json=sm.output.json, work_dir=sm.params.work_dir, participant_id=sm.params.participant_id,
    options=dict(sm.params.options), on_error=sm.params.on_error, log=sm.log[0])
