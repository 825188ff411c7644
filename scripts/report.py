"""Snakemake script: the run's self-contained HTML report (rviflow.report.document.build_report)."""
from pathlib import Path

from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, "rviflow.report.document:build_report", output_dir=Path(sm.output.html).parents[1],  # <out>/report/x.html
    config=dict(sm.params.config), out_html=sm.output.html, participants_tsv=sm.input.participants,
    atlas_image=sm.input.atlas_image, atlas_labels=sm.input.atlas_labels, log=sm.log[0])
