"""Dry-run DAG construction at cohort scale: 100, 1,000, 5,000 and 15,501 subjects.

Each cohort is a tree of empty (0-byte) placeholder files with real BIDS / fMRIPrep names:
per subject the preprocessed BOLD, brain mask and confounds, fMRIPrep's T1w and T1w->MNI
transform, and a BIDS-ASL series (so the CBF chain is in the DAG too; --no-asl leaves it out).
Any image read while the DAG is built would fail on a 0-byte file, so a passing dry run shows
that parsing, discovery and job planning read no image. For each size, a fresh
``snakemake --dry-run`` (the repository's Snakefile, default config) is timed and its peak RSS
taken from the kernel (wait4). Input discovery (rviflow.io.bids.discover_scans) is also timed in
this process, counting os.scandir calls against the number of directories, to check that each
directory is listed a bounded number of times (not once per subject).

    .venv/bin/python benchmarks/bench_dag.py                        # all sizes, batch mode (100 per job)
    .venv/bin/python benchmarks/bench_dag.py --sizes 100 1000       # quick
    .venv/bin/python benchmarks/bench_dag.py --batch-size 0 --out benchmarks/results/bench_dag_per_scan

The default is batch mode (config ``batch_size: 100``), the setting for cohorts of thousands:
one job per step per scan costs Snakemake a few ms per job to plan (77,518 jobs for 15,501
subjects: ~6 minutes; see results/bench_dag_per_scan*.md).

Goal: 15,501 subjects in under 60 s, near-linear growth. Results (JSON + Markdown, with machine
info) go to benchmarks/results/bench_dag.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SPACE = "MNI152NLin2009cAsym"
SIZES = (100, 1000, 5000, 15501)


def make_cohort(root: Path, n: int, asl: bool) -> tuple[Path, Path]:
    """Empty placeholder BIDS + fMRIPrep trees for subjects 1..n (adds only what is missing)."""
    bids, fmriprep = root / "bids", root / "derivatives" / "fmriprep"
    bids.mkdir(parents=True, exist_ok=True)
    fmriprep.mkdir(parents=True, exist_ok=True)
    rows = ["participant_id\tdiagnosis\tage\tsex\tsite"]
    for i in range(1, n + 1):
        sub = f"sub-{i:05d}"
        rows.append(f"{sub}\t{'MDD' if i % 2 else 'HC'}\t{20 + i % 50}\t{'F' if i % 3 else 'M'}\tsite{i % 5}")
        func = fmriprep / sub / "func"
        if func.is_dir():
            continue
        func.mkdir(parents=True)
        for name in (f"{sub}_task-rest_space-{SPACE}_desc-preproc_bold.nii.gz",
                     f"{sub}_task-rest_space-{SPACE}_desc-preproc_bold.json",
                     f"{sub}_task-rest_space-{SPACE}_desc-brain_mask.nii.gz",
                     f"{sub}_task-rest_desc-confounds_timeseries.tsv",
                     f"{sub}_task-rest_desc-confounds_timeseries.json"):
            (func / name).touch()
        if asl:
            anat = fmriprep / sub / "anat"
            anat.mkdir()
            (anat / f"{sub}_desc-preproc_T1w.nii.gz").touch()
            (anat / f"{sub}_from-T1w_to-{SPACE}_mode-image_xfm.h5").touch()
            perf = bids / sub / "perf"
            perf.mkdir(parents=True)
            for name in ("asl.nii.gz", "asl.json", "aslcontext.tsv", "m0scan.nii.gz", "m0scan.json"):
                (perf / f"{sub}_{name}").touch()
    (bids / "participants.tsv").write_text("\n".join(rows) + "\n")
    return bids, fmriprep


def dry_run(root: Path, bids: Path, fmriprep: Path, batch_size: int = 0) -> dict:
    """A fresh ``snakemake --dry-run``: wall seconds, peak RSS (MB), jobs per rule."""
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump(dict(bids_dir=str(bids), fmriprep_dir=str(fmriprep), output_dir=str(root / "out"),
                                       task="rest", space=SPACE, batch_size=batch_size)))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(cfg),
           "--directory", str(root), "--dry-run", "--quiet", "rules", "progress", "host", "--cores", "1"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, NIPYPE_NO_ET="1"))
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"dry run failed ({proc.returncode}):\n{out[-3000:]}")
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1].split("\n\n")[0], re.M)) \
        if "Job stats:" in out else {}
    return dict(wall_s=round(wall, 2), peak_rss_mb=round(usage.ru_maxrss / 1024, 1), cpu_s=round(usage.ru_utime
                + usage.ru_stime, 2), jobs={k: int(v) for k, v in stats.items()})


def discovery(fmriprep: Path) -> dict:
    """discover_scans in-process: seconds, scans, os.scandir calls vs directories in the tree."""
    from rviflow.io import bids as bids_io

    calls = []
    real = os.scandir

    def counting(path="."):
        calls.append(os.fspath(path))
        return real(path)

    os.scandir = counting
    try:
        t0 = time.perf_counter()
        scans, problems = bids_io.discover_scans(fmriprep, "rest", SPACE)
        seconds = time.perf_counter() - t0
    finally:
        os.scandir = real
    n_dirs = sum(1 for _ in os.walk(fmriprep))
    return dict(seconds=round(seconds, 3), scans=len(scans), problems=len(problems), scandir_calls=len(calls),
                directories=n_dirs, max_lists_per_directory=max(calls.count(c) for c in set(calls)))


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    import snakemake

    return dict(date=time.strftime("%Y-%m-%dT%H:%M:%S"), cpu=cpu, cpus=os.cpu_count(), ram_gb=round(mem_kb / 2**20, 1),
                python=platform.python_version(), snakemake=snakemake.__version__,
                loadavg_start=os.getloadavg(), platform=platform.platform())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--no-asl", action="store_true", help="BOLD only (no CBF chain in the DAG)")
    ap.add_argument("--batch-size", type=int, default=100,
                    help="config batch_size (0 = one job per step per scan; default 100, as recommended at scale)")
    ap.add_argument("--workdir", default="", help="where to build the placeholder trees (default: a temp dir)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_dag"))
    args = ap.parse_args(argv)
    info = machine()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir or None) as tmp:
        root = Path(tmp)
        for n in sorted(args.sizes):  # one tree, grown from size to size
            t0 = time.perf_counter()
            bids, fmriprep = make_cohort(root, n, not args.no_asl)
            build = time.perf_counter() - t0
            row = dict(subjects=n, placeholder_build_s=round(build, 1), discovery=discovery(fmriprep),
                       dry_run=dry_run(root, bids, fmriprep, args.batch_size))
            rows.append(row)
            d = row["dry_run"]
            print(f"{n:>6} subjects: dry run {d['wall_s']:7.1f} s ({d['cpu_s']:.1f} CPU s), peak "
                  f"{d['peak_rss_mb']:7.0f} MB, {d['jobs'].get('total', 0)} jobs; discovery "
                  f"{row['discovery']['seconds']:.2f} s, {row['discovery']['max_lists_per_directory']} listing(s) "
                  f"per directory at most", flush=True)
            write(rows, info, args)  # after each size: a long run interrupted still leaves results


def write(rows, info, args):
    info["loadavg_end"] = os.getloadavg()
    base = rows[0]
    for r in rows:
        r["dry_run"]["s_per_1000_subjects"] = round(1000 * r["dry_run"]["wall_s"] / r["subjects"], 2)
        r["growth_vs_smallest"] = dict(subjects=round(r["subjects"] / base["subjects"], 1),
                                       time=round(r["dry_run"]["wall_s"] / base["dry_run"]["wall_s"], 1))
    largest = rows[-1]
    result = dict(machine=info, asl=not args.no_asl, batch_size=args.batch_size, goal="15,501 subjects < 60 s, near-linear", results=rows,
                  goal_met=bool(largest["subjects"] >= 15501 and largest["dry_run"]["wall_s"] < 60))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# DAG benchmark (dry run, placeholder files)", "",
        f"{info['date']} · {info['cpu']} · {info['cpus']} CPUs · {info['ram_gb']} GB RAM · Python {info['python']}, "
        f"snakemake {info['snakemake']} · load average at start {info['loadavg_start'][0]:.1f} "
        f"(shared machine: wall times include other jobs' load)", "",
        f"Empty placeholder files with real BIDS names ({'BOLD + ASL' if not args.no_asl else 'BOLD only'}); "
        f"default config with batch_size: {args.batch_size} "
        f"({'one job per step per scan' if not args.batch_size else f'{args.batch_size} scans per batch job'}); "
        "`snakemake --dry-run` in a fresh process per size.", "",
        "| subjects | jobs | dry run s (wall) | CPU s | wall s / 1,000 subj. | peak RSS MB | discovery s | max listings / dir |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d, q = r["dry_run"], r["discovery"]
        lines.append(f"| {r['subjects']:,} | {d['jobs'].get('total', 0):,} | {d['wall_s']} | {d['cpu_s']} "
                     f"| {d['s_per_1000_subjects']} | {d['peak_rss_mb']:,.0f} | {q['seconds']} "
                     f"| {q['max_lists_per_directory']} |")
    lines += ["", f"Goal (15,501 subjects < 60 s): {'met' if result['goal_met'] else 'NOT met'}. Growth from "
              f"{base['subjects']:,} to {largest['subjects']:,} subjects: x{largest['growth_vs_smallest']['subjects']} "
              f"subjects, x{largest['growth_vs_smallest']['time']} time."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
