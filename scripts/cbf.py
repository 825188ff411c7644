"""Snakemake script: one ASL series' (or perfusion map's) CBF on the template grid (rviflow.steps.cbf_step)."""
from rviflow.steps import cbf_step

sm = snakemake  # noqa: F821 (injected by Snakemake)
outputs = {k: sm.output[k] for k in ("cbf", "rel", "mask", "json")} | {"att": sm.params.att}
cbf_step(sm.input.source, outputs, sm.input.reference, sm.input.atlas_image, sm.params.work_dir,
         sm.params.participant_id, sm.params.source, dict(sm.params.options), sm.params.in_template,
         sm.input.get("t1w"), sm.input.get("xfm"), sm.params.reference, sm.input.get("reference_mask"),
         sm.params.on_error, sm.log[0])
