"""Snakemake script: one ASL series' (or perfusion map's) CBF on the template grid (rviflow.pipeline.steps.cbf_step)."""
from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, "rviflow.pipeline.steps:cbf_step", source_file=sm.input.source,
    outputs={k: sm.output[k] for k in ("cbf", "rel", "mask", "json")} | {"att": sm.params.att},
    reference_mask=sm.input.reference, atlas_image=sm.input.atlas_image, work_dir=sm.params.work_dir,
    participant_id=sm.params.participant_id, source=sm.params.source, options=dict(sm.params.options),
    in_template=sm.params.in_template, t1w=sm.input.get("t1w"), template_xfm=sm.input.get("xfm"),
    reference=sm.params.reference, reference_mask_file=sm.input.get("reference_mask"),
    on_error=sm.params.on_error, log=sm.log[0])
