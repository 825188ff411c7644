"""rviflow command line: demo, synth, run, reho, cbf, score, setup-resources, lock."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from rviflow.io.config import schema_defaults

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
#: the local profile (keep-going, rerun-incomplete) that `rviflow run` / `demo` use unless given --profile
DEFAULT_PROFILE = REPO / "config" / "profiles" / "default"
DRY_RUN = ("-n", "--dry-run", "--dryrun")


def _snakefile() -> Path:
    if not SNAKEFILE.exists():
        sys.exit(f"rviflow: the workflow (Snakefile) is not beside the package at {REPO}; "
                 "install rviflow from its repository with `pip install -e .`")
    return SNAKEFILE


def run_snakemake(args: list[str], workdir: str | Path | None = None, output_dir: str | Path | None = None) -> int:
    """Run the pipeline with snakemake (same Python), adding --cores if not given.

    Without a ``--profile`` the local profile config/profiles/default is used (keep-going,
    rerun-incomplete). With ``output_dir`` (and not a dry run) the run holds rviflow's lock on
    it (:mod:`rviflow.pipeline.runlock`): a second run on the same output_dir refuses, and a Snakemake
    lock that a killed run left on it is cleared first.
    """
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(_snakefile())]
    if workdir:
        cmd += ["--directory", str(workdir)]
    if not any(a == "--profile" or a.startswith("--profile=") for a in args):
        cmd += ["--profile", str(DEFAULT_PROFILE)]
    if not any(a == "--workflow-profile" or a.startswith("--workflow-profile=") for a in args):
        # rviflow has no workflow profile; without this, Snakemake takes any folder named "default"
        # in the working directory (e.g. an output_dir) for one and stops
        cmd += ["--workflow-profile", "none"]
    if not any(a in ("--cores", "-c", "--jobs", "-j", "--profile", "--dry-run", "-n") or a.startswith(("--cores=", "-c"))
               for a in args):
        cmd += ["--cores", "all"]
    env = dict(os.environ, NIPYPE_NO_ET="1")
    if output_dir is None or any(a in DRY_RUN for a in args):
        return _wait(subprocess.Popen(cmd + args, env=env))
    return _locked_run(cmd, args, env, workdir, output_dir)


def _locked_run(cmd: list[str], args: list[str], env: dict, workdir, output_dir) -> int:
    """The run itself, holding rviflow's lock on ``output_dir``, its output through the progress
    display (rviflow.pipeline.progress) with Snakemake's full log in <output_dir>/logs/rviflow_run-*.log."""
    from rviflow.pipeline.runlock import RunLockError, hold, release, stale_snakemake_lock

    created = not Path(output_dir).exists()
    try:
        fd = hold(output_dir)
    except RunLockError as exc:
        print(f"rviflow run: {exc}", file=sys.stderr)
        return 1
    try:
        wd = workdir or _option(args, ("--directory", "-d")) or "."
        if stale_snakemake_lock(wd, output_dir):
            print(f"rviflow run: clearing the Snakemake lock a stopped run left in {Path(wd).resolve()}/.snakemake",
                  file=sys.stderr)
            _wait(subprocess.Popen(cmd + args + ["--unlock"], env=env))
        return _with_progress(cmd + args, env, fd, output_dir)
    finally:
        release(fd, output_dir, created)


def _with_progress(cmd: list[str], env: dict, fd: int, output_dir) -> int:
    """snakemake with its merged output piped through :class:`rviflow.pipeline.progress.Progress`."""
    from rviflow.pipeline.progress import Progress, follow, log_file

    log = log_file(output_dir)
    print(f"rviflow: Snakemake's full log: {log}", file=sys.stderr, flush=True)
    progress = Progress(log)
    proc = subprocess.Popen(cmd, env=env, pass_fds=(fd,), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    try:
        rc = follow(proc, progress)
    finally:
        progress.close()
    state = "finished" if rc == 0 else f"stopped (exit code {rc})"
    print(f"rviflow: {state}: {progress.status_line(final=True)}; Snakemake's full log: {log}", file=sys.stderr,
          flush=True)
    return rc


def _wait(proc: subprocess.Popen) -> int:
    """Wait for snakemake. Ctrl-C reaches it too (same process group) and it stops cleanly,
    removing its lock: keep waiting for that rather than killing it."""
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def _option(args: list[str], names: tuple[str, ...]) -> str | None:
    """Value of the last ``--name VALUE`` / ``--name=VALUE`` among snakemake arguments."""
    value = None
    for i, a in enumerate(args):
        if a in names and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(tuple(f"{n}=" for n in names if n.startswith("--"))):
            value = a.split("=", 1)[1]
    return value


def output_dir_of(configfile: str | Path, args: list[str]) -> Path | None:
    """The run's output_dir: the config file's, or a ``--config output_dir=...`` override; a
    relative one is taken from snakemake's working directory (``--directory``), as the workflow
    takes it. None if the config file does not say (the workflow's validation will)."""
    try:
        cfg = yaml.safe_load(Path(configfile).read_text())
    except (OSError, yaml.YAMLError):
        return None
    out = cfg.get("output_dir") if isinstance(cfg, dict) else None
    for i, a in enumerate(args):
        if a in ("--config", "-C"):
            for item in args[i + 1:]:
                if item.startswith("-"):
                    break
                if item.startswith("output_dir="):
                    out = item.split("=", 1)[1]
    if not out or not isinstance(out, str):
        return None
    return Path(_option(args, ("--directory", "-d")) or ".").joinpath(out).absolute()


def demo_config(cohort: dict[str, Path], out: Path) -> dict:
    return dict(
        bids_dir=str(cohort["bids"].resolve()),
        fmriprep_dir=str(cohort["fmriprep"].resolve()),
        output_dir=str((out / "derivatives" / "rviflow").resolve()),
        task="rest",
        space="MNI152NLin2009cAsym",
        # imaging transcriptomics of the ReHo d map: real AHBA DK table, real GO BP + theme sets;
        # 1000 null maps (the gene p-values' and the enrichment's ensemble null)
        transcriptomics=dict(enabled=True, maps=["reho"], collections=["go_bp", "rviflow_themes"], n_nulls=1000),
    )


def tables_demo_config(cohort: dict, out: Path) -> dict:
    """A tables-only run (no fmriprep_dir): the cohort statistics on regional tables + participants.tsv."""
    return dict(
        output_dir=str((out / "derivatives" / "rviflow").resolve()),
        participants=str(cohort["participants"].resolve()),
        cohort=dict(tables={m: str(p.resolve()) for m, p in cohort["tables"].items()},
                    thickness=dict(source="enigma", enigma_table=str(cohort["enigma"].resolve()))),
    )


def longitudinal_demo_config(cohort: dict, out: Path, tables_only: bool = False) -> dict:
    """The pre / post demo (rviflow.synth.longitudinal): images (ses-pre / ses-post, BIDS
    sessions.tsv) or, with ``tables_only``, a regional table with a session column + sessions.tsv."""
    from rviflow.synth.longitudinal import BASELINE, FOLLOWUP

    design = dict(type="longitudinal", baseline=BASELINE, followup=FOLLOWUP, symptoms=["hamd"],
                  prediction=dict(models=["ridge", "svr"], n_perm=200))
    off = dict(rvi=dict(enabled=False), prediction=dict(enabled=False), colocalisation=dict(enabled=False))
    associations = [dict(variables=["crp"], groups=["all"])]  # participants.tsv biomarker, planted
    if tables_only:
        design["sessions_table"] = str(cohort["sessions"].resolve())
        return dict(output_dir=str((out / "derivatives" / "rviflow").resolve()),
                    participants=str(cohort["participants"].resolve()), design=design, associations=associations,
                    cohort=dict(tables={m: str(p.resolve()) for m, p in cohort["tables"].items()},
                                thickness=dict(source="none"), **off))
    cfg = demo_config(cohort, out)
    cfg["design"] = design
    cfg["associations"] = associations
    cfg["cohort"] = dict(thickness=dict(source="none"), **off)
    cfg["transcriptomics"]["maps"] = ["reho", "change_reho"]
    return cfg


def resources_main() -> int:
    from rviflow.io.resources import main

    return main()


def cmd_synth(a) -> int:
    from rviflow.synth.cohort import write_cohort

    paths = write_cohort(a.out, n_subjects=a.subjects, seed=a.seed, n_sites=a.sites, n_timepoints=a.timepoints)
    print(f"rviflow synth: {a.subjects} subjects written under {a.out}; truth in {paths['truth']}")
    return 0


def cmd_demo(a) -> int:
    from rviflow.synth.cohort import write_cohort
    from rviflow.synth.tables import write_table_cohort

    out = Path(a.out)
    if a.design == "longitudinal":
        from rviflow.synth.longitudinal import write_longitudinal_cohort, write_longitudinal_tables

        if a.tables_only:
            cfg = longitudinal_demo_config(write_longitudinal_tables(out, n_subjects=a.subjects, seed=a.seed,
                                                                     n_sites=a.sites), out, tables_only=True)
        else:
            cfg = longitudinal_demo_config(write_longitudinal_cohort(out, n_subjects=a.subjects, seed=a.seed,
                                                                     n_sites=a.sites), out)
            if resources_main() != 0:
                print("rviflow demo: transcriptomics resources unavailable, stage skipped", file=sys.stderr)
                cfg["transcriptomics"]["enabled"] = False
    elif a.tables_only:
        cfg = tables_demo_config(write_table_cohort(out, n_subjects=a.subjects, seed=a.seed, n_sites=a.sites), out)
    else:
        cfg = demo_config(write_cohort(out, n_subjects=a.subjects, seed=a.seed, n_sites=a.sites), out)
        if resources_main() != 0:  # fetched by setup.sh already; a no-op then
            print("rviflow demo: transcriptomics resources unavailable, stage skipped", file=sys.stderr)
            cfg["transcriptomics"]["enabled"] = False
    cfg_path = out / "config.yaml"
    cfg_path.write_text("# written by `rviflow demo`; rerun with: snakemake --configfile "
                        f"{cfg_path.resolve()} --cores N (from the rviflow repo)\n" + yaml.safe_dump(cfg, sort_keys=False))
    print(f"rviflow demo: cohort in {out}, config {cfg_path}; running the pipeline ...", flush=True)
    rc = run_snakemake(["--configfile", str(cfg_path.resolve()), "--cores", str(a.cores), *a.snakemake_args],
                       workdir=out, output_dir=cfg["output_dir"])
    if rc == 0:
        more = ("change.tsv, change_associations.tsv, response_prediction.tsv, associations.tsv, "
                if a.design == "longitudinal" else "")
        print(f"rviflow demo: done. Results in {cfg['output_dir']}/group/ ({more}effect_sizes.tsv, qc.tsv, ...)")
        report = Path(cfg["output_dir"]) / "report" / "rviflow_report.html"
        if report.exists():
            print(f"rviflow demo: report {report}")
    return rc


def with_participant_label(args: list[str], labels: list[str] | None) -> list[str]:
    """snakemake arguments setting config participant_label (BIDS-App ``--participant-label``):
    "001" and "sub-001" both name sub-001. Added to the user's own ``--config`` items if any
    (a second --config would replace them)."""
    if not labels:
        return list(args)
    bad = [lab for lab in labels if not re.fullmatch(r"(sub-)?[A-Za-z0-9]+", lab)]
    if bad:
        raise SystemExit(f"rviflow run: --participant-label {bad[0]!r} is not a BIDS subject label "
                         "(letters and digits, optionally with sub-)")
    subs = sorted({lab if lab.startswith("sub-") else f"sub-{lab}" for lab in labels})
    item = "participant_label=[" + ",".join(f'"{sub}"' for sub in subs) + "]"
    args = list(args)
    for i, a in enumerate(args):
        if a in ("--config", "-C"):
            return args[:i + 1] + [item] + args[i + 1:]
    return args + ["--config", item]


def cmd_run(a, rest: list[str]) -> int:
    rest = with_participant_label(rest, a.participant_label)
    return run_snakemake(["--configfile", a.configfile, *rest], output_dir=output_dir_of(a.configfile, rest))


def cmd_reho(a) -> int:
    import nibabel as nib
    import numpy as np

    from rviflow.io.nifti import load_4d, load_mask, read_data
    from rviflow.errors import InputError
    from rviflow.measures.reho import reho_map

    try:
        img = load_4d(a.bold)
        mask = (load_mask(a.mask, img.shape, img.affine) if a.mask
                else np.ones(img.shape[:3], dtype=bool))
        w, used = reho_map(read_data(img, a.bold), mask, a.neighbourhood,
                           tie_correction=a.tie_correction)
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

    from rviflow.io.bids import write_json
    from rviflow.measures.cbf.quantify import CbfOptions, cbf_options
    from rviflow.errors import InputError
    from rviflow.measures.cbf.perfusion import quantify_file

    given = dict(m0_fwhm=a.m0_fwhm, t1_blood=a.t1_blood, labeling_efficiency=a.labeling_efficiency,
                 m0_tr_limit=a.m0_tr_limit, bs_with_labeling_efficiency=a.bs_with_labeling_efficiency)
    opts = CbfOptions(**{**cbf_options(schema_defaults("cbf")), **given})
    try:
        res, affine, brain = quantify_file(a.asl, a.m0, a.mask, opts, a.m0_tr)
    except InputError as exc:
        print(f"rviflow cbf: {exc}", file=sys.stderr)
        return 2
    if res.constants.get("M0TRCorrection", "").startswith("skipped"):
        print(f"rviflow cbf: {a.m0 or 'the separate M0 scan'}: no RepetitionTimePreparation (no JSON beside it, "
              "no --m0-tr): the short-TR M0 correction is skipped (recorded in the JSON)", file=sys.stderr)
    nib.save(nib.Nifti1Image(res.cbf.astype(np.float32), affine), a.out)
    stem = str(a.out).removesuffix(".gz").removesuffix(".nii")
    if res.att is not None:
        nib.save(nib.Nifti1Image(res.att.astype(np.float32), affine), f"{stem}_att.nii.gz")
    write_json(f"{stem}.json", dict(Sources=[a.asl], Units="ml/100g/min", Constants=res.constants, QC=res.qc))
    print(f"rviflow cbf: {int(brain.sum())} voxels, mean CBF in the brain {res.qc['mean_brain_cbf']:.2f} "
          f"ml/100 g/min, {res.qc.get('volumes_dropped', 0)} volume(s) dropped -> {a.out}")
    return 0


def cmd_score(a) -> int:
    from rviflow.cohort.stats import score_new_subjects
    from rviflow.errors import InputError

    try:
        scores = score_new_subjects(a.reference, a.table, a.participants, a.out)
    except InputError as exc:
        print(f"rviflow score: {exc}", file=sys.stderr)
        return 2
    print(f"rviflow score: {len(scores)} subjects scored against {a.reference} (no refitting) -> {a.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lock"]:  # a developer's step with its own options (rviflow.pipeline.envlock)
        from rviflow.pipeline.envlock import main as lock_main

        return lock_main(argv[1:])
    p = argparse.ArgumentParser(prog="rviflow", description=__doc__)
    p.add_argument("--version", action="store_true", help="rviflow's version and the locked package versions in use")
    sub = p.add_subparsers(dest="cmd")

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
    d.add_argument("--tables-only", action="store_true",
                   help="regional tables (ReHo, CBF, ENIGMA thickness) instead of images: the cohort statistics alone")
    d.add_argument("--design", choices=("cross-sectional", "longitudinal"), default="cross-sectional",
                   help="longitudinal: a pre / post treatment cohort (ses-pre, ses-post; planted change, "
                        "change-symptom coupling, baseline predictor; rviflow.synth.longitudinal)")
    d.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="extra snakemake arguments after --")

    r = sub.add_parser("run", help="run the pipeline: rviflow run --configfile FILE [snakemake args]")
    r.add_argument("--configfile", required=True)
    r.add_argument("--participant-label", nargs="+", metavar="LABEL",
                   help="only these subjects' per-scan jobs (001 or sub-001; config participant_label); the "
                        "cohort stage runs on every subject with finished outputs. Add -n to see what will run")

    h = sub.add_parser("reho", help="raw ReHo (Kendall's W) of one 4-D image, like AFNI 3dReHo")
    h.add_argument("bold")
    h.add_argument("--mask")
    h.add_argument("--out", required=True)
    reho, cbf = schema_defaults("reho"), schema_defaults("cbf")  # the defaults are the config schema's
    h.add_argument("--neighbourhood", type=int, choices=(7, 19, 27), default=reho["neighbourhood"])
    h.add_argument("--no-tie-correction", dest="tie_correction", action="store_false",
                   default=reho["tie_correction"], help="uncorrected W, as DPABI / C-PAC")

    c = sub.add_parser("cbf", help="CBF (ml/100 g/min) of one BIDS-ASL file, sidecars found by BIDS naming")
    c.add_argument("asl", help="*_asl.nii.gz (with *_asl.json, *_aslcontext.tsv beside it)")
    c.add_argument("--out", required=True)
    c.add_argument("--m0", help="separate M0 image (default: the sidecar's M0Type)")
    c.add_argument("--mask", help="brain mask on the ASL grid (default: EPI mask of M0 / mean control)")
    c.add_argument("--m0-fwhm", type=float, default=cbf["m0_fwhm"], help="M0 smoothing FWHM in mm (0 = off)")
    c.add_argument("--m0-tr", type=float, help="repetition time (s) of the --m0 image (default: its JSON sidecar)")
    c.add_argument("--m0-tr-limit", type=float, default=cbf["m0_tr_limit"],
                   help="M0 with a shorter TR (s) is divided by 1 - exp(-TR/T1 tissue) (0 = never)")
    c.add_argument("--t1-blood", type=float, help="T1 of arterial blood in s (default: 1.65 at 3 T, 1.35 at 1.5 T)")
    c.add_argument("--labeling-efficiency", type=float,
                   help="labelling efficiency alpha (default: the sidecar's, else the white-paper value)")
    c.add_argument("--bs-with-labeling-efficiency", action="store_true",
                   help="apply the 0.95-per-background-suppression-pulse factor to a given efficiency too")

    f = sub.add_parser("score", help="RVI / AVI of new subjects against a frozen reference "
                       "(group/models/reference_<measure>.pkl), without refitting")
    f.add_argument("--reference", required=True, help="group/models/reference_<measure>.pkl of a previous run")
    f.add_argument("--table", required=True, help="regional table of the new subjects (participant_id, regions...)")
    f.add_argument("--participants", required=True, help="participants.tsv of the new subjects (group, covariates, site)")
    f.add_argument("--out", required=True, help="output TSV: participant_id, measure, rvi, avi")

    sub.add_parser("setup-resources", help="fetch / build the transcriptomics stage's offline resources once "
                   "(AHBA DK expression table, GO / KEGG / theme GMTs) into $RVIFLOW_CACHE or .cache/rviflow")
    sub.add_parser("lock", help="developers: re-resolve locks/*.txt from the declared ranges and rewrite envs/*.yaml "
                   "(rviflow lock --help)")

    a, rest = p.parse_known_args(argv)
    if a.version:
        from rviflow import __version__
        from rviflow.pipeline.envlock import version_text

        print(version_text(__version__))
        return 0
    if a.cmd is None:
        p.error("a command is required (or --version)")
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
