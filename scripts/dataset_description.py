"""Snakemake script: BIDS-derivatives dataset_description.json at the output root."""
from pathlib import Path

from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, "rviflow.io.bids:write_dataset_description", output_dir=Path(sm.output[0]).parent,
    source_dirs=list(sm.params.sources))
