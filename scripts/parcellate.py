"""Snakemake script: one scan's regional means (rviflow.pipeline.steps.parcellate_step)."""
from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
extra = dict(brain_mask=sm.input.brain) if sm.input.get("brain") else {}
run(sm, "rviflow.pipeline.steps:parcellate_step", in_map=sm.input.map, in_json=sm.input.map_json, valid_mask=sm.input.valid,
    atlas_image=sm.input.atlas_image, atlas_labels=sm.input.atlas_labels, measure=sm.rule.removeprefix("parcellate_"),
    out_tsv=sm.output.tsv, out_json=sm.output.json, work_dir=sm.params.work_dir,
    participant_id=sm.params.participant_id, session=sm.params.session, on_error=sm.params.on_error,
    min_coverage=sm.params.min_coverage, min_regions=sm.params.min_regions, log=sm.log[0], **extra)
