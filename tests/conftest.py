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


def write_config(path: Path, cohort: dict, output_dir: Path, /, **overrides) -> Path:
    # positional-only (/), so that a `cohort` config section can be passed as an override
    cfg = dict(bids_dir=str(cohort["bids"]), fmriprep_dir=str(cohort["fmriprep"]), output_dir=str(output_dir),
               task="rest", space="MNI152NLin2009cAsym")
    cfg.update(overrides)
    path.write_text(yaml.safe_dump(cfg))
    return path


#: config overrides for runs that test the workflow's machinery (SLURM, re-runs) on a few subjects:
#: too few for ComBat, cross-validated RVI or prediction, and CBF / colocalisation only cost time
MACHINERY_CONFIG = dict(
    min_per_group=2,
    cbf={"enabled": "no"},
    cohort={"harmonize": False, "thickness": {"source": "none"}, "rvi": {"enabled": False},
            "prediction": {"enabled": False}, "colocalisation": {"enabled": False}},
)


def recovered_vs_planted(out: Path, cohort: dict, measure: str):
    """(effect sizes of ``measure`` merged with truth/effects.tsv, the whole effect-size table)."""
    import pandas as pd

    eff = pd.read_csv(out / "group" / "effect_sizes.tsv", sep="\t")
    truth = pd.read_csv(cohort["truth"] / "effects.tsv", sep="\t")
    m = eff.merge(truth, on=["measure", "region"])
    return m[m["measure"] == measure], eff


def run_snakemake(configfile: Path, workdir: Path, *extra: str, timeout: int = 2400) -> subprocess.CompletedProcess:
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


@pytest.fixture(scope="session")
def synthetic_ahba(tmp_path_factory):
    """Two synthetic AHBA donors (rviflow.synth_ahba; 300 samples, 300 genes, 20 planted genes that
    follow the synthetic cohort's planted ReHo map) run through the abagen backend the way the rule
    runs it: scripts/abagen_expression.py in the isolated abagen venv that setup.sh makes.

    Returns (truth dict from write_ahba_donors, the planted map, the regions x genes table).
    reannotated=False: abagen's re-annotation needs all 58,692 AHBA probes in the files.
    """
    import json

    import pandas as pd

    from rviflow.expression import read_expression
    from rviflow.parcellate import DK_LABELS, default_atlas, read_labels
    from rviflow.synth import PLANTED_D, PLANTED_REGIONS
    from rviflow.synth_ahba import write_ahba_donors

    python = REPO / ".venv-abagen" / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} missing: run `bash setup.sh` (it makes the abagen environment)")
    root = tmp_path_factory.mktemp("ahba")
    labels = read_labels(DK_LABELS)
    planted_map = pd.Series([PLANTED_D if lab in PLANTED_REGIONS else 0.0 for lab in labels["label"]],
                            index=labels["name"], name="reho")
    truth = write_ahba_donors(root, planted_map, default_atlas()[0], labels, seed=0)
    out = root / "expression.tsv"
    # any network access would fail (dead proxy): abagen must find every file locally
    env = dict(os.environ, http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    proc = subprocess.run([str(python), str(REPO / "scripts" / "abagen_expression.py"), default_atlas()[0],
                           str(DK_LABELS), str(root), json.dumps({"reannotated": False}), str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return truth, planted_map, read_expression(out)
