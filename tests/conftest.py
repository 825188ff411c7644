"""Shared fixtures: synthetic cohorts and real snakemake runs on them (in tmp dirs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("NIPYPE_NO_ET", "1")


def write_config(path: Path, cohort: dict, output_dir: Path, **overrides) -> Path:
    cfg = dict(bids_dir=str(cohort["bids"]), fmriprep_dir=str(cohort["fmriprep"]), output_dir=str(output_dir),
               task="rest", space="MNI152NLin2009cAsym")
    cfg.update(overrides)
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_snakemake(configfile: Path, workdir: Path, *extra: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """A real snakemake run of the repository's Snakefile (same Python as the tests)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile",
           str(configfile), "--directory", str(workdir), "--cores", "2", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, NIPYPE_NO_ET="1"))


@pytest.fixture(scope="session")
def cohort16(tmp_path_factory):
    """16 synthetic subjects over 2 sites with planted ReHo deficits (seed 3)."""
    from rviflow.synth import write_cohort

    root = tmp_path_factory.mktemp("cohort16")
    return write_cohort(root, n_subjects=16, seed=3, n_sites=2)


@pytest.fixture(scope="session")
def pipeline_run(cohort16, tmp_path_factory):
    """The whole pipeline on ``cohort16``: (completed process, output_dir, cohort paths)."""
    work = tmp_path_factory.mktemp("run16")
    out = work / "derivatives" / "rviflow"
    cfg = write_config(work / "config.yaml", cohort16, out)
    proc = run_snakemake(cfg, work)
    return proc, out, cohort16
