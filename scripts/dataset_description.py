"""Snakemake script: BIDS-derivatives dataset_description.json at the output root."""
from pathlib import Path

from rviflow.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, "rviflow.bids_io:write_dataset_description", output_dir=Path(sm.output[0]).parent,
    source_dirs=list(sm.params.sources))
