"""Snakemake script: the run's self-contained HTML report (rviflow.report.document.build_report)."""
from pathlib import Path

from rviflow.report.document import build_report

sm = snakemake  # noqa: F821 (injected by Snakemake)
output_dir = Path(sm.output.html).parents[1]  # <output_dir>/report/rviflow_report.html
build_report(output_dir, dict(sm.params.config), sm.output.html, sm.input.participants,
             sm.input.atlas_image, sm.input.atlas_labels, log=sm.log[0])
