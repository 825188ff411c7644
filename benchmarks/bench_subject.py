"""Per-subject throughput of the BOLD chain (denoise -> ReHo -> parcels) against the bare load.

Issue #19's goal: on 2 cores, one UK Biobank-sized subject (88 x 88 x 64 x 490 float32, 2.4 mm,
TR 0.735 s, ~200k brain voxels, gzip-compressed) goes through the per-scan chain in at most 2x the
time nibabel takes to load its BOLD, with peak memory <= 4 GB.

Each measurement runs in a fresh Python process (wall from this process, CPU seconds and peak
RSS of the child from the kernel, ``os.wait4``), so imports count as they do in a job:

- ``load``: nibabel loads the BOLD into a float32 array (the floor);
- ``plain``: the same chain done the plain way, the baseline: nilearn ``clean_img`` (confounds
  from ``load_confounds``, same settings) + nibabel save (.nii.gz), then ``rviflow reho`` (CLI)
  on it, then nilearn's ``NiftiLabelsMasker``-free regional mean (numpy ``bincount``);
- ``before`` (with ``--before-src``, e.g. ``git archive <commit> src | tar -x -C /tmp/before``):
  the per-scan jobs of rviflow before issue #19 (nilearn's float64 clean, the temporary denoised
  series written as .nii.gz);
- ``steps``: rviflow's steps as separate processes (as the separate jobs of ``keep_denoised: true``
  run them, the series here written uncompressed): ``denoise``, ``reho`` reading it, ``parcellate``;
- ``fused``: the same steps in one process through ``rviflow.pipeline.batches.run_batch``, as the
  per-scan job ``reho_scan`` (per-scan mode, the default below 1,000 scans) and batch jobs run a
  scan: one load of the BOLD, the denoised series held in memory;
- ``snakemake``: the per-scan chain as a user runs it, ``snakemake --profile config/profiles/default``
  on the shipped config asking for the subject's ReHo parcels (DAG, job and script start included).

Per step: wall and CPU seconds, x load (wall / load wall), peak RSS; per chain: totals and
CPU-hours per 1,000 such subjects. Outputs of ``fused``, ``steps`` and ``snakemake`` are compared (ReHo map
and parcels). Results: benchmarks/results/bench_subject{,_quick}.{json,md}.

    .venv/bin/python benchmarks/bench_subject.py            # UK Biobank size, ~3 min
    .venv/bin/python benchmarks/bench_subject.py --quick    # 44 x 44 x 32 x 200, ~30 s
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))
SPACE = "MNI152NLin2009cAsym"
FULL = dict(shape=(88, 88, 64), timepoints=490, voxel_mm=2.4, tr=0.735)
QUICK = dict(shape=(44, 44, 32), timepoints=200, voxel_mm=4.8, tr=0.735)


def make_subject(root: Path, shape, timepoints, voxel_mm, tr, seed=0) -> dict:
    """An fMRIPrep-named subject: float32 BOLD (ellipsoid brain, shared slow signals + noise,
    values rounded to 0.01 as scanner data compress), brain mask, confounds TSV with real
    fMRIPrep column names (24 motion terms, WM, CSF, FD, std DVARS). Reused if present."""
    import nibabel as nib
    import pandas as pd

    func = root / "sub-01" / "func"
    stem = func / f"sub-01_task-rest_space-{SPACE}"
    paths = dict(bold=f"{stem}_desc-preproc_bold.nii.gz", mask=f"{stem}_desc-brain_mask.nii.gz",
                 confounds=str(func / "sub-01_task-rest_desc-confounds_timeseries.tsv"))
    if Path(paths["bold"]).exists():
        return paths
    func.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    idx = np.indices(shape)
    c = np.array(shape)[:, None, None, None] / 2
    radii = np.array([0.455, 0.455, 0.455])[:, None, None, None] * np.array(shape)[:, None, None, None]
    mask = (((idx - c) / radii) ** 2).sum(0) <= 1
    affine = np.diag([voxel_mm] * 3 + [1.0])
    affine[:3, 3] = -np.array(shape) * voxel_mm / 2
    slow = rng.standard_normal((timepoints, 20)).cumsum(0) * 0.3
    data = np.zeros(shape + (timepoints,), np.float32)
    for i in range(shape[0]):  # slab by slab: bounded memory
        sl = mask[i]
        n = int(sl.sum())
        if n:
            x = 1000 + 20 * rng.standard_normal((n, timepoints)) + rng.standard_normal((n, 20)) * 0.5 @ slow.T
            data[i][sl] = np.round(x, 2)
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr
    nib.save(img, paths["bold"])
    Path(paths["bold"].replace(".nii.gz", ".json")).write_text(json.dumps({"RepetitionTime": tr}))
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), paths["mask"])
    motion = rng.standard_normal((timepoints, 6)).cumsum(0) * 0.01
    cols = {}
    for j, name in enumerate(("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")):
        d = np.r_[np.nan, np.diff(motion[:, j])]
        cols.update({name: motion[:, j], f"{name}_derivative1": d, f"{name}_power2": motion[:, j] ** 2,
                     f"{name}_derivative1_power2": d ** 2})
    cols.update(white_matter=rng.standard_normal(timepoints), csf=rng.standard_normal(timepoints),
                global_signal=rng.standard_normal(timepoints),
                framewise_displacement=np.r_[np.nan, np.abs(rng.standard_normal(timepoints - 1)) * 0.1],
                std_dvars=np.r_[np.nan, 1 + np.abs(rng.standard_normal(timepoints - 1)) * 0.1])
    pd.DataFrame(cols).to_csv(paths["confounds"], sep="\t", index=False, na_rep="n/a")
    Path(paths["confounds"].replace(".tsv", ".json")).write_text(json.dumps({k: {} for k in cols}))
    return paths


# --- what each child process runs ---------------------------------------------------------------

LOAD = """
import sys, numpy as np, nibabel as nib
a = np.asarray(nib.load(sys.argv[1]).dataobj, dtype=np.float32)
"""

PLAIN_CLEAN = """
import sys, warnings, nibabel as nib
from nilearn.image import clean_img
from nilearn.interfaces.fmriprep import load_confounds
bold, mask, out = sys.argv[1:4]
warnings.simplefilter("ignore")
conf, sm = load_confounds(bold, strategy=("motion", "wm_csf"), motion="full", wm_csf="basic", demean=True)
img = clean_img(bold, confounds=conf, sample_mask=sm, detrend=True, standardize=False, low_pass=0.08,
                high_pass=0.01, t_r=float(sys.argv[4]), mask_img=mask)
nib.save(img, out)
"""

PLAIN_PARCELS = """
import sys, numpy as np, nibabel as nib
w = np.asarray(nib.load(sys.argv[1]).dataobj)
labels = np.asarray(nib.load(sys.argv[2]).dataobj).astype(int)
sums = np.bincount(labels.ravel(), w.ravel()); counts = np.bincount(labels.ravel())
np.savetxt(sys.argv[3], sums[1:] / np.maximum(counts[1:], 1))
"""

STEP = """
import json, sys
from rviflow.measures.registry import resolve
kwargs = json.loads(sys.argv[2])
ok = resolve(sys.argv[1])(**kwargs)
sys.exit(0 if ok else 3)
"""

FUSED = """
import json, sys
from rviflow.pipeline.batches import run_batch
plan, record, remove = json.loads(sys.argv[1])
table = run_batch(plan, record, remove)
sys.exit(0 if (table["status"] == "ok").all() else 3)
"""


def child(code: str, *args, threads: int = 2, src: str | Path = REPO / "src", argv: list | None = None,
          cwd: str | Path | None = None) -> dict:
    """Run ``code`` in a fresh interpreter (or the command ``argv``) on ``threads`` CPUs (rviflow
    from ``src``): wall / CPU seconds (its reaped descendants included), peak RSS MB (the largest
    single process)."""
    env = dict(os.environ, NIPYPE_NO_ET="1", PYTHONPATH=str(src), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv or [sys.executable, "-c", code, *map(str, args)], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code_ = os.waitstatus_to_exitcode(status)
    if code_ != 0:
        raise RuntimeError(f"child failed ({code_}):\n{out[-3000:]}")
    return dict(wall_s=round(wall, 2), cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
                peak_rss_mb=round(usage.ru_maxrss / 1024))


def chain_kwargs(paths: dict, out: Path, atlas: str, labels: str, series_ext: str = ".nii", before: bool = False
                 ) -> list[dict]:
    """rviflow's per-scan steps for the subject, as rviflow.pipeline.batches plans them (measures.smk)."""
    from rviflow.io.config import schema_defaults
    from rviflow.measures.registry import REGISTRY, step_options

    defaults = schema_defaults()  # the shipped config's denoising and ReHo (measures.smk plans the same)
    denoise_options = {k: v for k, v in defaults["denoise"].items() if k != "keep_denoised"}
    pid = "sub-01"
    d = out / pid / "func"
    stem = f"{d}/{pid}_task-rest_space-{SPACE}"
    denoised = dict(bold=f"{stem}_desc-denoised_bold{series_ext}", json=f"{stem}_desc-denoised_bold.json")
    outs = {k: f"{stem}_desc-{o.desc}_{o.suffix}{o.ext}" for k, o in REGISTRY["reho"].outputs.items()}
    common = dict(participant_id=pid, on_error="exclude")
    reho_options = step_options(REGISTRY["reho"], defaults["reho"])
    return [
        dict(step="denoise", ref="rviflow.pipeline.steps:denoise_step", kwargs=dict(
            bold=paths["bold"], mask=paths["mask"], out_bold=denoised["bold"], out_json=denoised["json"],
            work_dir=str(out / "work" / "denoise"), options=denoise_options, log=str(out / "logs" / "denoise.log"), **common,
            **({} if before else {"threads": 2}))),
        dict(step="reho", ref="rviflow.pipeline.steps:reho_step", kwargs=dict(
            bold=denoised["bold"], bold_json=denoised["json"], mask=paths["mask"], outputs=outs,
            work_dir=str(out / "work" / "reho"), options=reho_options, threads=2,
            log=str(out / "logs" / "reho.log"), **common)),
        dict(step="parcellate", ref="rviflow.pipeline.steps:parcellate_step", kwargs=dict(
            in_map=outs["reho"], in_json=outs["json"], valid_mask=outs["mask"], atlas_image=atlas,
            atlas_labels=labels, measure="reho", out_tsv=f"{stem}_desc-reho_parcels.tsv",
            out_json=f"{stem}_desc-reho_parcels.json", work_dir=str(out / "work" / "parcellate"), session="",
            min_coverage=defaults["atlas"]["min_coverage"], min_regions=defaults["atlas"]["min_regions"],
            log=str(out / "logs" / "parcellate.log"), **common)),
    ]


#: every BOLD measure on: ALFF / fALFF (a second, regressed series) and seed FC (atlas-label seeds)
ALL_MEASURES = dict(alff={"enabled": True}, fc={"enabled": True, "seeds": {"r10": {"label": "region10"},
                                                                          "r50": {"label": "region50"}}})


def snakemake_run(root: Path, paths: dict, atlas: str, labels: str, out: Path, **settings) -> dict:
    """The per-scan chain as a user runs it (issue #19's measurement): ``snakemake --profile
    config/profiles/default`` on the shipped config (the subject's BIDS participants row, the
    atlas above, no ASL) asking for the subject's ReHo parcels; the whole Snakemake process tree."""
    import yaml

    bids = root / "bids"
    bids.mkdir(exist_ok=True)
    (bids / "participants.tsv").write_text("participant_id\tdiagnosis\tage\tsex\tsite\nsub-01\tMDD\t40\tF\tsite1\n")
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "bench", "BIDSVersion": "1.9.0"}))
    cfg = root / f"{out.name}.yaml"
    cfg.write_text(yaml.safe_dump(dict(bids_dir=str(bids), fmriprep_dir=str(Path(paths["bold"]).parents[2]),
                                       output_dir=str(out), task="rest", space=SPACE,
                                       atlas={"image": atlas, "labels": labels}, cbf={"enabled": "no"},
                                       **settings)))
    target = out / "sub-01" / "func" / f"sub-01_task-rest_space-{SPACE}_desc-reho_parcels.tsv"
    return child("", argv=[sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--profile",
                           str(REPO / "config" / "profiles" / "default"), "--configfile", str(cfg), "--directory",
                           str(root), "--cores", "2", str(target), "--quiet", "all"], cwd=root)


def make_atlas(root: Path, mask_path: str) -> tuple[str, str]:
    """83 labels, contiguous runs of the brain mask's voxels (regional means need only a label image)."""
    import nibabel as nib
    import pandas as pd

    m = nib.load(mask_path)
    brain = np.asarray(m.dataobj) > 0
    lab = np.zeros(brain.shape, int)
    lab[brain] = np.arange(int(brain.sum())) * 83 // int(brain.sum()) + 1
    atlas, labels = root / "atlas.nii.gz", root / "atlas.tsv"
    nib.save(nib.Nifti1Image(lab.astype(np.int16), m.affine), atlas)
    pd.DataFrame(dict(index=np.arange(1, 84), name=[f"region{i:02d}" for i in range(1, 84)])).to_csv(
        labels, sep="\t", index=False)
    return str(atlas), str(labels)


def machine() -> dict:
    from bench_dag import machine as dag_machine

    return dag_machine()


def run(args) -> dict:
    params = QUICK if args.quick else FULL
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench_subject_"))
    info = machine()
    t0 = time.perf_counter()
    paths = make_subject(root / "fmriprep", **params)
    print(f"subject ready in {time.perf_counter() - t0:.0f} s: {paths['bold']} "
          f"({os.path.getsize(paths['bold']) / 2**20:.0f} MB)", flush=True)
    atlas, labels = make_atlas(root, paths["mask"])
    import nibabel as nib

    n_brain = int((np.asarray(nib.load(paths["mask"]).dataobj) > 0).sum())
    results = dict(machine=info, input=dict(**{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
                                             brain_voxels=n_brain,
                                             bold_mb=round(os.path.getsize(paths["bold"]) / 2**20, 1)))
    repeats = []
    for rep in range(args.repeats):
        for old in root.glob("*[0-9]"):  # outputs of an earlier run in this workdir: nothing may be kept
            if old.is_dir() and old.name.rstrip("0123456789") in ("plain", "before", "per_scan", "fused", "snakemake", "snakemake_all"):
                shutil.rmtree(old)
        r = {}
        r["load"] = {"load": child(LOAD, paths["bold"])}
        plain = root / f"plain{rep}"
        plain.mkdir(exist_ok=True)
        r["plain"] = {
            "clean_img + save": child(PLAIN_CLEAN, paths["bold"], paths["mask"], plain / "clean.nii.gz", params["tr"]),
            "rviflow reho": child(f"import sys; from rviflow.cli import main; sys.argv[1:] = sys.argv[1:]; "
                                  f"sys.exit(main(sys.argv[1:]))", "reho", plain / "clean.nii.gz", "--mask",
                                  paths["mask"], "--out", plain / "reho.nii.gz"),
            "parcels": child(PLAIN_PARCELS, plain / "reho.nii.gz", atlas, plain / "parcels.txt"),
        }
        if args.before_src:
            old = chain_kwargs(paths, root / f"before{rep}", atlas, labels, ".nii.gz", before=True)
            r["before"] = {s["step"]: child(STEP, s["ref"], json.dumps(s["kwargs"]), src=args.before_src) for s in old}
        steps = chain_kwargs(paths, root / f"per_scan{rep}", atlas, labels)
        r["steps"] = {s["step"]: child(STEP, s["ref"], json.dumps(s["kwargs"])) for s in steps}
        fused = chain_kwargs(paths, root / f"fused{rep}", atlas, labels)
        plan = [dict(key="sub-01", participant_id="sub-01", steps=[dict(step=s["step"], kwargs=s["kwargs"])
                                                                   for s in fused])]
        record = root / f"fused{rep}" / "record.tsv"
        r["fused"] = {"denoise + reho + parcellate (one process)": child(
            FUSED, json.dumps([plan, str(record), [fused[0]["kwargs"]["out_bold"]]]))}
        snake_out = root / f"snakemake{rep}"
        r["snakemake"] = {"snakemake --profile default (reho_scan job + DAG)": snakemake_run(
            root, paths, atlas, labels, snake_out)}
        # the same command again, nothing left to do: Snakemake's start and DAG for this config, paid
        # once per invocation (a cohort's DAG: bench_dag.py), not per subject
        r["snakemake_dag"] = {"the same, nothing to do (start + DAG only)": snakemake_run(
            root, paths, atlas, labels, snake_out)}
        r["snakemake_all"] = {"ReHo + ALFF/fALFF + 2 FC seeds (reho_scan job + DAG)": snakemake_run(
            root, paths, atlas, labels, root / f"snakemake_all{rep}", **ALL_MEASURES)}
        r["same_outputs"] = compare(steps, fused)
        r["snakemake_vs_fused"] = compare_files(
            fused, str(snake_out / "sub-01" / "func" / f"sub-01_task-rest_space-{SPACE}_desc-reho_bold.nii.gz"),
            str(snake_out / "sub-01" / "func" / f"sub-01_task-rest_space-{SPACE}_desc-reho_parcels.tsv"))
        if args.before_src:
            r["before_vs_after"] = compare(old, fused)
        repeats.append(r)
        print(json.dumps(r), flush=True)
    results["repeats"] = repeats
    results["summary"] = summarise(repeats)
    results["goal"] = "per-scan chain <= 2x the bare load (wall), peak RSS <= 4 GB, 2 cores"
    results["quick"] = bool(args.quick)
    results["before_label"] = args.before_label
    return results


def compare(per_scan: list[dict], fused: list[dict]) -> dict:
    """Largest differences between two chains' ReHo map and parcels."""
    return compare_files(per_scan, per_scan[1]["kwargs"]["outputs"]["reho"], per_scan[2]["kwargs"]["out_tsv"],
                         fused)


def compare_files(chain: list[dict], reho: str, parcels: str, other: list[dict] | None = None) -> dict:
    """Largest differences between ``reho`` / ``parcels`` and the ReHo map / parcels of ``chain``
    (of ``other`` when given)."""
    import nibabel as nib
    import pandas as pd

    ref = other or chain
    a = np.asarray(nib.load(reho).dataobj)
    b = np.asarray(nib.load(ref[1]["kwargs"]["outputs"]["reho"]).dataobj)
    pa = pd.read_csv(parcels, sep="\t").select_dtypes("number").to_numpy()
    pb = pd.read_csv(ref[2]["kwargs"]["out_tsv"], sep="\t").select_dtypes("number").to_numpy()
    return dict(reho_max_abs_diff=float(np.abs(a - b).max()), parcels_max_abs_diff=float(np.nanmax(np.abs(pa - pb))))


def summarise(repeats: list[dict]) -> dict:
    """Best of the repeats per step; chain totals, x load and CPU-hours per 1,000 subjects."""
    best = {}
    for chain in [c for c in ("load", "plain", "before", "steps", "fused", "snakemake", "snakemake_dag", "snakemake_all") if c in repeats[0]]:
        best[chain] = {}
        for step in repeats[0][chain]:
            runs = [r[chain][step] for r in repeats]
            best[chain][step] = min(runs, key=lambda x: x["wall_s"])
    load = best["load"]["load"]["wall_s"]
    load_cpu = best["load"]["load"]["cpu_s"]
    out = {}
    for chain, steps in best.items():
        wall = sum(s["wall_s"] for s in steps.values())
        cpu = sum(s["cpu_s"] for s in steps.values())
        out[chain] = dict(steps={k: {**v, "x_load": round(v["wall_s"] / load, 2),
                                     "x_load_cpu": round(v["cpu_s"] / load_cpu, 2)} for k, v in steps.items()},
                          wall_s=round(wall, 2), cpu_s=round(cpu, 2), x_load=round(wall / load, 2),
                          x_load_cpu=round(cpu / load_cpu, 2),
                          peak_rss_mb=max(s["peak_rss_mb"] for s in steps.values()),
                          cpu_hours_per_1000=round(cpu * 1000 / 3600, 1))
    return out


def write(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    m, i, s = results["machine"], results["input"], results["summary"]
    lines = ["# Per-subject throughput (denoise -> ReHo -> parcels)", "",
             "`.venv/bin/python benchmarks/bench_subject.py" + (" --quick" if results["quick"] else "")
             + (" --before-src <older rviflow>/src" if "before" in s else "") + "`. Wall times on a shared "
             "machine include other jobs' load: CPU seconds are the steadier measure.", "",
             f"{m['date']} · {m['cpu']} · {m['cpus']} CPUs · {m['ram_gb']} GB RAM · Python {m['python']} · load "
             f"average at start {m['loadavg_start'][0]:.1f} (shared machine: wall times include other jobs' load)", "",
             f"Input: {'x'.join(map(str, i['shape']))} x {i['timepoints']} float32, {i['voxel_mm']} mm, TR {i['tr']} s, "
             f"{i['brain_voxels']:,} brain voxels, {i['bold_mb']} MB .nii.gz. Each row a fresh process on 2 threads "
             f"(imports included), best of {len(results['repeats'])}.", "",
             "| chain | step | wall s | CPU s | x load (wall) | x load (CPU) | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for chain, c in s.items():
        for step, v in c["steps"].items():
            lines.append(f"| {chain} | {step} | {v['wall_s']} | {v['cpu_s']} | {v['x_load']} | {v['x_load_cpu']} "
                         f"| {v['peak_rss_mb']:,} |")
        if chain != "load":
            lines.append(f"| **{chain}** | **total** | **{c['wall_s']}** | **{c['cpu_s']}** | **{c['x_load']}** "
                         f"| **{c['x_load_cpu']}** | **{c['peak_rss_mb']:,}** |")
    lines += ["", "| chain | CPU-hours per 1,000 subjects |", "|---|---|"]
    lines += [f"| {chain} | {c['cpu_hours_per_1000']} |" for chain, c in s.items() if chain != "load"]
    same = results["repeats"][-1]["same_outputs"]
    last = results["repeats"][-1]
    lines += ["", "load = nibabel's load of the BOLD (zlib), the floor; plain = nilearn clean_img + nibabel save (.nii.gz) + "
              "`rviflow reho` + regional means (the baseline); before = an older rviflow's steps (`--before-src`, "
              f"{results.get('before_label') or 'not measured'}) as separate processes, the series written as .nii.gz; steps = rviflow's steps as separate processes "
              "(the separate jobs of keep_denoised: true; series written uncompressed here); fused = the same steps in "
              "one process (`rviflow.pipeline.batches.run_batch`: the per-scan job `reho_scan` and batch jobs), one "
              "load (ISA-L inflate, rviflow.io.nifti), the denoised series held in memory; snakemake = `snakemake "
              "--profile config/profiles/default` on the shipped config asking for the subject's parcels (the DAG, "
              "the reho_scan job and its script start included).",
              f"Fused vs steps outputs: ReHo max |diff| {last['same_outputs']['reho_max_abs_diff']:.3g}, parcels max "
              f"|diff| {last['same_outputs']['parcels_max_abs_diff']:.3g}; snakemake vs fused: ReHo "
              f"{last['snakemake_vs_fused']['reho_max_abs_diff']:.3g}, parcels "
              f"{last['snakemake_vs_fused']['parcels_max_abs_diff']:.3g}."
              + (f" After vs before: ReHo max |diff| "
                 f"{last['before_vs_after']['reho_max_abs_diff']:.3g} (Kendall's W, 0-1), parcels "
                 f"max |diff| {last['before_vs_after']['parcels_max_abs_diff']:.3g}."
                 if "before_vs_after" in last else ""),
              f"Goal ({results['goal']}): fused {s['fused']['x_load']}x load wall ({s['fused']['x_load_cpu']}x in "
              f"CPU seconds), {s['fused']['peak_rss_mb']:,} MB; through Snakemake {s['snakemake']['x_load']}x wall "
              f"({s['snakemake']['x_load_cpu']}x CPU) for one invocation, of which Snakemake's start and DAG "
              f"(snakemake_dag) are {s['snakemake_dag']['wall_s']} s: the job itself "
              f"{(s['snakemake']['wall_s'] - s['snakemake_dag']['wall_s']) / s['load']['steps']['load']['wall_s']:.2f}x "
              f"load; steps as separate processes {s['steps']['x_load']}x wall. With every BOLD measure on "
              f"(snakemake_all: ALFF / fALFF from a second, regressed series and 2 seed-FC maps, on the same one "
              f"load): {s['snakemake_all']['x_load']}x wall, the job "
              f"{(s['snakemake_all']['wall_s'] - s['snakemake_dag']['wall_s']) / s['load']['steps']['load']['wall_s']:.2f}x "
              f"load, {s['snakemake_all']['peak_rss_mb']:,} MB."
              + (f" At load average {m['loadavg_start'][0]:.1f} on {m['cpus']} CPUs every wall time here is inflated "
                 "by other jobs (the bare load itself took "
                 f"{s['load']['steps']['load']['wall_s']} s wall for {s['load']['steps']['load']['cpu_s']} CPU s): "
                 "compare the CPU columns." if m["loadavg_start"][0] > m["cpus"] else "")]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def rerender(path: Path) -> None:
    """Rewrite a result's Markdown (and summary) from its JSON (after a change of the report only)."""
    results = json.loads(path.with_suffix(".json").read_text())
    results["summary"] = summarise(results["repeats"])
    write(results, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="44 x 44 x 32 x 200 (seconds)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workdir", default="", help="where to build the subject (reused if there)")
    ap.add_argument("--out", default="")
    ap.add_argument("--before-src", default="", help="src/ of an older rviflow: its steps as 'before'")
    ap.add_argument("--before-label", default="", help="what --before-src is (e.g. its commit)")
    args = ap.parse_args(argv)
    results = run(args)
    out = Path(args.out or REPO / "benchmarks" / "results" / ("bench_subject_quick" if args.quick else "bench_subject"))
    write(results, out)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
