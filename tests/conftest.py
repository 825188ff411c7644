"""Shared fixtures: synthetic cohorts and real snakemake runs on them (in tmp dirs)."""

from __future__ import annotations

import os
import re
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


def plant_slow_signal(cohort: dict, voxels, rng, sd: float, shared: bool, band=(0.02, 0.06), tr: float = 2.0):
    """Add band-limited fluctuations (``band`` Hz, white noise filtered by FFT) of SD ``sd`` to
    ``voxels`` (bool (X, Y, Z)) of every MDD subject's preprocessed BOLD in a synthetic cohort:
    one series per voxel, or one ``shared`` by all of them (int16, rewritten in place)."""
    import nibabel as nib
    import numpy as np
    import pandas as pd

    part = pd.read_csv(cohort["participants"], sep="\t")
    for pid in part.loc[part["diagnosis"] == "MDD", "participant_id"]:
        bold = next((cohort["fmriprep"] / pid / "func").glob("*_desc-preproc_bold.nii.gz"))
        img = nib.load(bold)
        data = np.asarray(img.dataobj).astype(np.float32)
        n = data.shape[3]
        spec = np.fft.rfft(rng.standard_normal(n if shared else (int(voxels.sum()), n)), axis=-1)
        f = np.fft.rfftfreq(n, d=tr)
        spec[..., (f < band[0]) | (f > band[1])] = 0
        slow = np.fft.irfft(spec, n=n, axis=-1)
        slow *= sd / slow.std(axis=-1, keepdims=True)
        data[voxels] += slow
        nib.Nifti1Image(np.round(data).astype(np.int16), img.affine, img.header).to_filename(bold)


#: one job block of a snakemake log: rule name, then its indented lines
JOB_BLOCK = re.compile(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n)*)", re.M)


def finished_jobs(log: str) -> set[tuple[str, str]]:
    """(rule, wildcards or '') of every job a run finished, from its snakemake log (the "rule X:"
    job blocks and their "Finished jobid" lines)."""
    planned = {}
    for m in JOB_BLOCK.finditer(log):
        jobid = re.search(r"jobid: (\d+)", m.group(2))
        wildcards = re.search(r"wildcards: (.*)", m.group(2))
        if jobid:
            planned[jobid.group(1)] = (m.group(1), wildcards.group(1) if wildcards else "")
    finished = re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", log)
    assert finished, "no finished jobs in the log:\n" + log[-2000:]
    ran = set()
    for jobid, rule in finished:
        assert planned[jobid][0] == rule, (jobid, rule)
        ran.add(planned[jobid])
    return ran


def jobs_that_ran(log: str) -> set[tuple[str, str]]:
    """(rule, subject or '') of every job a run finished (see :func:`finished_jobs`)."""
    subject = re.compile(r"sub-[a-zA-Z0-9]+")
    return {(rule, m.group(0) if (m := subject.search(w)) else "") for rule, w in finished_jobs(log)}


def output_mtimes(out: Path, subjects) -> dict[str, int]:
    """mtime (ns) of every file of ``subjects`` under ``out``: unchanged = not rewritten."""
    return {str(p): p.stat().st_mtime_ns for s in subjects for p in (out / s).rglob("*") if p.is_file()}


def derivative_files(out: Path) -> set[str]:
    """Relative paths of the files of an output tree, without logs/, work/ (nipype provenance)
    and rviflow's run lock."""
    return {str(p.relative_to(out)) for p in out.rglob("*")
            if p.is_file() and p.relative_to(out).parts[0] not in ("logs", "work") and p.name != ".rviflow.lock"}


def assert_same_outputs(out_a: Path, out_b: Path) -> set[str]:
    """Two runs' output trees hold the same files with the same content: NIfTI arrays and
    affines, JSON and text with each tree's own path replaced (and the report's time stamps).
    Returns the files compared."""
    import json

    import nibabel as nib
    import numpy as np

    files = derivative_files(out_a)
    assert files == derivative_files(out_b), files ^ derivative_files(out_b)
    for rel in sorted(files):
        a, b = out_a / rel, out_b / rel
        if not a.stat().st_size or not b.stat().st_size:  # a failed subject's 0-byte placeholders
            assert a.stat().st_size == b.stat().st_size, rel
        elif a.name.endswith(".nii.gz"):
            ia, ib = nib.load(a), nib.load(b)
            assert np.array_equal(np.asarray(ia.dataobj), np.asarray(ib.dataobj)), rel
            assert np.allclose(ia.affine, ib.affine), rel
        elif a.suffix == ".json":
            ja = json.loads(a.read_text().replace(str(out_a), "<out>"))
            jb = json.loads(b.read_text().replace(str(out_b), "<out>"))
            assert ja == jb, rel
        elif a.suffix in (".tsv", ".html", ".txt"):
            ta, tb = (f.read_text().replace(str(o), "<out>") for f, o in ((a, out_a), (b, out_b)))
            if a.suffix == ".html":  # the report states when it was made
                ta, tb = (re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?", "<time>", t) for t in (ta, tb))
            assert ta == tb, rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel
    return files


@pytest.fixture(scope="session")
def cohort16(tmp_path_factory):
    """16 synthetic subjects over 2 sites with planted ReHo deficits (seed 3)."""
    from rviflow.synth.cohort import write_cohort

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
    """Two synthetic AHBA donors (rviflow.synth.ahba; 300 samples, 300 genes, 20 planted genes that
    follow the synthetic cohort's planted ReHo map) run through the abagen backend the way the rule
    runs it: scripts/abagen_expression.py in the isolated abagen venv that setup.sh makes.

    Returns (truth dict from write_ahba_donors, the planted map, the regions x genes table).
    reannotated=False: abagen's re-annotation needs all 58,692 AHBA probes in the files.
    """
    import json

    import pandas as pd

    from rviflow.transcriptomics.expression import read_expression
    from rviflow.preprocess.parcellate import DK_LABELS, default_atlas, read_labels
    from rviflow.synth.cohort import PLANTED_D, PLANTED_REGIONS
    from rviflow.synth.ahba import write_ahba_donors

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
