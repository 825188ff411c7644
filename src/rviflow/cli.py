"""rviflow command line: demo, synth, run, reho."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"


def _snakefile() -> Path:
    if not SNAKEFILE.exists():
        sys.exit(f"rviflow: the workflow (Snakefile) is not beside the package at {REPO}; "
                 "install rviflow from its repository with `pip install -e .`")
    return SNAKEFILE


def run_snakemake(args: list[str], workdir: str | Path | None = None) -> int:
    """Run the pipeline with snakemake (same Python), adding --cores if not given."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(_snakefile())]
    if workdir:
        cmd += ["--directory", str(workdir)]
    if not any(a in ("--cores", "-c", "--jobs", "-j", "--profile", "--dry-run", "-n") or a.startswith(("--cores=", "-c"))
               for a in args):
        cmd += ["--cores", "all"]
    env = dict(os.environ, NIPYPE_NO_ET="1")
    return subprocess.call(cmd + args, env=env)


def demo_config(cohort: dict[str, Path], out: Path) -> dict:
    return dict(
        bids_dir=str(cohort["bids"].resolve()),
        fmriprep_dir=str(cohort["fmriprep"].resolve()),
        output_dir=str((out / "derivatives" / "rviflow").resolve()),
        task="rest",
        space="MNI152NLin2009cAsym",
    )


def cmd_synth(a) -> int:
    from .synth import write_cohort

    paths = write_cohort(a.out, n_subjects=a.subjects, seed=a.seed, n_sites=a.sites, n_timepoints=a.timepoints)
    print(f"rviflow synth: {a.subjects} subjects written under {a.out}; truth in {paths['truth']}")
    return 0


def cmd_demo(a) -> int:
    from .synth import write_cohort

    out = Path(a.out)
    cohort = write_cohort(out, n_subjects=a.subjects, seed=a.seed, n_sites=a.sites)
    cfg = demo_config(cohort, out)
    cfg_path = out / "config.yaml"
    cfg_path.write_text("# written by `rviflow demo`; rerun with: snakemake --configfile "
                        f"{cfg_path.resolve()} --cores N (from the rviflow repo)\n" + yaml.safe_dump(cfg, sort_keys=False))
    print(f"rviflow demo: cohort in {out}, config {cfg_path}; running the pipeline ...", flush=True)
    rc = run_snakemake(["--configfile", str(cfg_path.resolve()), "--cores", str(a.cores), *a.snakemake_args],
                       workdir=out)
    if rc == 0:
        print(f"rviflow demo: done. Results in {cfg['output_dir']}/group/ (effect_sizes.tsv, qc.tsv, ...)")
    return rc


def cmd_run(a, rest: list[str]) -> int:
    return run_snakemake(["--configfile", a.configfile, *rest])


def cmd_reho(a) -> int:
    import nibabel as nib
    import numpy as np

    from .denoise import load_4d, load_mask
    from .errors import InputError
    from .reho import reho_map

    try:
        img = load_4d(a.bold)
        mask = (load_mask(a.mask, img.shape, img.affine) if a.mask
                else np.ones(img.shape[:3], dtype=bool))
        w, used = reho_map(np.asarray(img.dataobj, dtype=np.float32), mask, a.neighbourhood,
                           tie_correction=not a.no_tie_correction)
    except InputError as exc:
        print(f"rviflow reho: {exc}", file=sys.stderr)
        return 2
    hdr = img.header.copy()
    hdr.set_data_shape(img.shape[:3])
    hdr.set_data_dtype(np.float32)
    nib.save(nib.Nifti1Image(w, img.affine, hdr), a.out)
    print(f"rviflow reho: {int(used.sum())} voxels, mean W {w[used].mean():.4f} -> {a.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rviflow", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("synth", help="write a synthetic cohort (BIDS + fMRIPrep derivatives + truth/)")
    s.add_argument("--out", required=True)
    s.add_argument("--subjects", type=int, default=24)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sites", type=int, default=3)
    s.add_argument("--timepoints", type=int, default=100)

    d = sub.add_parser("demo", help="synthetic cohort + the whole pipeline on it")
    d.add_argument("--out", required=True)
    d.add_argument("--subjects", type=int, default=24)
    d.add_argument("--cores", type=int, default=2)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--sites", type=int, default=3)
    d.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="extra snakemake arguments after --")

    r = sub.add_parser("run", help="run the pipeline: rviflow run --configfile FILE [snakemake args]")
    r.add_argument("--configfile", required=True)

    h = sub.add_parser("reho", help="raw ReHo (Kendall's W) of one 4-D image, like AFNI 3dReHo")
    h.add_argument("bold")
    h.add_argument("--mask")
    h.add_argument("--out", required=True)
    h.add_argument("--neighbourhood", type=int, choices=(7, 19, 27), default=27)
    h.add_argument("--no-tie-correction", action="store_true", help="uncorrected W, as DPABI / C-PAC")

    a, rest = p.parse_known_args(argv)
    if a.cmd == "run":
        return cmd_run(a, rest)
    if rest:
        p.error(f"unrecognised arguments: {' '.join(rest)}")
    if a.cmd == "demo" and a.snakemake_args and a.snakemake_args[0] == "--":
        a.snakemake_args = a.snakemake_args[1:]
    return {"synth": cmd_synth, "demo": cmd_demo, "reho": cmd_reho}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
