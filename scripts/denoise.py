"""Snakemake script: one scan's confound regression + band-pass (rviflow.steps.denoise_step)."""
from rviflow.steps import denoise_step

sm = snakemake  # noqa: F821 (injected by Snakemake)
denoise_step(sm.input.bold, sm.input.mask, sm.output.bold, sm.output.json, sm.params.work_dir,
             sm.params.participant_id, dict(sm.params.options), sm.params.on_error, sm.log[0])
