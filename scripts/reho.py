"""Snakemake script: one scan's ReHo maps (rviflow.steps.reho_step)."""
from rviflow.steps import reho_step

sm = snakemake  # noqa: F821 (injected by Snakemake)
outputs = {k: sm.output[k] for k in ("reho", "mreho", "zreho", "mask", "json")}
reho_step(sm.input.bold, sm.input.bold_json, sm.input.mask, outputs, sm.params.work_dir,
          sm.params.participant_id, dict(sm.params.options), sm.params.on_error, sm.log[0])
