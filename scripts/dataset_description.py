"""Snakemake script: BIDS-derivatives dataset_description.json at the output root."""
from pathlib import Path

from rviflow.bids_io import write_dataset_description

sm = snakemake  # noqa: F821 (injected by Snakemake)
write_dataset_description(Path(sm.output[0]).parent, list(sm.params.sources))
