"""rviflow command line: demo, synth, run, reho, cbf."""

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
        # imaging transcriptomics of the ReHo d map: real AHBA DK table, real GO BP + theme sets;
        # 1000 null maps, 100 GSEA permutations keep the demo within its time budget
        transcriptomics=dict(enabled=True, maps=["reho"], collections=["go_bp", "rviflow_themes"], n_nulls=1000,
                             n_perm=100),
    )


def resources_main() -> int:
    from .resources import main

    return main()


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
    if resources_main() != 0:  # fetched by setup.sh already; a no-op then
        print("rviflow demo: transcriptomics resources unavailable, stage skipped", file=sys.stderr)
        cfg["transcriptomics"]["enabled"] = False
    cfg_path = out / "config.yaml"
    cfg_path.write_text("# written by `rviflow demo`; rerun with: snakemake --configfile "
                        f"{cfg_path.resolve()} --cores N (from the rviflow repo)\n" + yaml.safe_dump(cfg, sort_keys=False))
    print(f"rviflow demo: cohort in {out}, config {cfg_path}; running the pipeline ...", flush=True)
    rc = run_snakemake(["--configfile", str(cfg_path.resolve()), "--cores", str(a.cores), *a.snakemake_args],
                       workdir=out)
    if rc == 0:
        print(f"rviflow demo: done. Results in {cfg['output_dir']}/group/ (effect_sizes.tsv, qc.tsv, ...)")
        report = Path(cfg["output_dir"]) / "report" / "rviflow_report.html"
        if report.exists():
            print(f"rviflow demo: report {report}")
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


def cmd_cbf(a) -> int:
    import nibabel as nib
    import numpy as np

    from .bids_io import write_json
    from .cbf import CbfOptions
    from .errors import InputError
    from .perfusion import quantify_file

    try:
        res, affine, brain = quantify_file(a.asl, a.m0, a.mask, CbfOptions(m0_fwhm=a.m0_fwhm))
    except InputError as exc:
        print(f"rviflow cbf: {exc}", file=sys.stderr)
        return 2
    nib.save(nib.Nifti1Image(res.cbf.astype(np.float32), affine), a.out)
    stem = str(a.out).removesuffix(".gz").removesuffix(".nii")
    if res.att is not None:
        nib.save(nib.Nifti1Image(res.att.astype(np.float32), affine), f"{stem}_att.nii.gz")
    write_json(f"{stem}.json", dict(Sources=[a.asl], Units="ml/100g/min", Constants=res.constants, QC=res.qc))
    print(f"rviflow cbf: {int(brain.sum())} voxels, mean CBF {res.cbf[brain].mean():.2f} ml/100 g/min, "
          f"{res.qc.get('volumes_dropped', 0)} volume(s) dropped -> {a.out}")
    return 0


def cmd_score(a) -> int:
    from .cohort_stats import score_new_subjects
    from .errors import InputError

    try:
        scores = score_new_subjects(a.reference, a.table, a.participants, a.out)
    except InputError as exc:
        print(f"rviflow score: {exc}", file=sys.stderr)
        return 2
    print(f"rviflow score: {len(scores)} subjects scored against {a.reference} (no refitting) -> {a.out}")
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

    c = sub.add_parser("cbf", help="CBF (ml/100 g/min) of one BIDS-ASL file, sidecars found by BIDS naming")
    c.add_argument("asl", help="*_asl.nii.gz (with *_asl.json, *_aslcontext.tsv beside it)")
    c.add_argument("--out", required=True)
    c.add_argument("--m0", help="separate M0 image (default: the sidecar's M0Type)")
    c.add_argument("--mask", help="brain mask on the ASL grid (default: EPI mask of M0 / mean control)")
    c.add_argument("--m0-fwhm", type=float, default=5.0, help="M0 smoothing FWHM in mm (0 = off)")

    f = sub.add_parser("score", help="RVI / AVI of new subjects against a frozen reference "
                       "(group/models/reference_<measure>.pkl), without refitting")
    f.add_argument("--reference", required=True, help="group/models/reference_<measure>.pkl of a previous run")
    f.add_argument("--table", required=True, help="regional table of the new subjects (participant_id, regions...)")
    f.add_argument("--participants", required=True, help="participants.tsv of the new subjects (group, covariates, site)")
    f.add_argument("--out", required=True, help="output TSV: participant_id, measure, rvi, avi")

    sub.add_parser("setup-resources", help="fetch / build the transcriptomics stage's offline resources once "
                   "(AHBA DK expression table, GO / KEGG / theme GMTs) into $RVIFLOW_CACHE or .cache/rviflow")

    a, rest = p.parse_known_args(argv)
    if a.cmd == "run":
        return cmd_run(a, rest)
    if rest:
        p.error(f"unrecognised arguments: {' '.join(rest)}")
    if a.cmd == "demo" and a.snakemake_args and a.snakemake_args[0] == "--":
        a.snakemake_args = a.snakemake_args[1:]
    if a.cmd == "setup-resources":
        return resources_main()
    return {"synth": cmd_synth, "demo": cmd_demo, "reho": cmd_reho, "cbf": cmd_cbf, "score": cmd_score}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
