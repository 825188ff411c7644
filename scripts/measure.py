"""Snakemake script: one scan's maps of a generated measure (rviflow.pipeline.steps.measure_step)."""
from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, "rviflow.pipeline.steps:measure_step", measure=sm.params.measure, bold=sm.input.bold, bold_json=sm.input.bold_json,
    mask=sm.input.mask, outputs=dict(sm.output.items()), work_dir=sm.params.work_dir,
    participant_id=sm.params.participant_id, options=dict(sm.params.options), threads=sm.threads,
    on_error=sm.params.on_error, log=sm.log[0])
