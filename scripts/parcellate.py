"""Snakemake script: one scan's regional means (rviflow.steps.parcellate_step)."""
from rviflow.steps import parcellate_step

sm = snakemake  # noqa: F821 (injected by Snakemake)
measure = sm.rule.removeprefix("parcellate_")
parcellate_step(sm.input.map, sm.input.map_json, sm.input.valid, sm.input.atlas_image, sm.input.atlas_labels,
                measure, sm.output.tsv, sm.output.json, sm.params.work_dir, sm.params.participant_id,
                sm.params.session, sm.params.on_error, sm.log[0], sm.input.get("brain"),
                sm.params.get("min_coverage", 0.5))
