"""Benchmark rviflow's ReHo against the load time of a UK-Biobank-sized run, and against junifer.

Our goal (issue: ReHo at cohort scale): on 2 cores, computing ReHo for one UK Biobank rfMRI
run (88 x 88 x 64 voxels x 490 volumes, ~200k brain voxels, shipped as gzip-compressed
float32 NIfTI) takes at most 3x the time to load the file (about 15 s) and at most 4 GB of
memory.

What it does:

1. builds a synthetic run of that size (an ellipsoid brain mask; a spatially smooth signal,
   the sum of a few Gaussian-smoothed random maps times random time courses, plus white
   noise; zero outside the mask) and writes it with nibabel as ``.nii.gz`` in a temp dir;
2. times, each in a fresh subprocess pinned to 2 CPUs, with peak RSS from
   ``resource.getrusage(...).ru_maxrss``:
   a. loading the file with nibabel into a float32 array;
   b. loading + ``rviflow.measures.reho.reho_map`` (27 neighbours, 2 threads);
   c. junifer 0.0.8's numpy ReHo (``junifer.markers.reho._junifer_reho.JuniferReHo.compute``,
      which loads the file itself as float64) run from a separate venv;
3. checks that junifer's and rviflow's maps agree on a smaller grid, for 7/19/27 neighbours,
   on continuous data (no ties) and on integer data (many ties; junifer 0.0.8 detects ties on
   the exact values, unlike AFNI, which truncates values to int first).

Results go to ``benchmarks/results/bench_reho.json`` and ``bench_reho.md``
(``bench_reho_quick.*`` with ``--quick``).

Usage::

    PYTHONPATH=src /tmp/v1/bin/python benchmarks/bench_reho.py \
        [--quick] [--junifer-python /tmp/vjunifer/bin/python]

junifer is heavy (nilearn, pandas, ...): install it into its own venv, e.g.
``python3.11 -m venv /tmp/vjunifer && /tmp/vjunifer/bin/pip install junifer==0.0.8``.
The subprocess modes (``--child ...``) import only numpy and nibabel at top level, so this
file also runs under junifer's interpreter.
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
SRC = HERE.parent / "src"
FULL = dict(shape=(88, 88, 64, 490), radii=(40.0, 40.0, 30.0))
QUICK = dict(shape=(44, 44, 32, 200), radii=(20.0, 20.0, 15.0))
AGREE = dict(shape=(30, 28, 22, 120), radii=(13.0, 12.0, 9.5))
GOAL_RATIO, GOAL_SECONDS, GOAL_GB, GOAL_CORES = 3.0, 15.0, 4.0, 2


def peak_gb() -> float:
    """Peak resident set size of this process so far, GB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def cpu_s() -> float:
    """User + system CPU seconds of this process (all threads) so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def pin_cpus(n: int) -> list[int]:
    """Restrict this process to its first ``n`` allowed CPUs; return the CPUs used."""
    cpus = sorted(os.sched_getaffinity(0))[:n]
    os.sched_setaffinity(0, cpus)
    return cpus


def ellipsoid_mask(grid: tuple[int, int, int], radii: tuple[float, float, float]) -> np.ndarray:
    centre = (np.array(grid) - 1) / 2.0
    axes = np.ogrid[tuple(slice(0, g) for g in grid)]
    return sum(((a - c) / r) ** 2 for a, c, r in zip(axes, centre, radii)) <= 1.0


def synth_run(shape, radii, seed=0, n_maps=8, smooth_vox=2.0, integer_levels=0):
    """(X, Y, Z, N) float32 smooth signal + noise inside an ellipsoid mask, and the mask.

    With ``integer_levels`` > 0 the values are rounded to that many integer levels per voxel
    (many ties).
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    grid, n_t = shape[:3], shape[3]
    mask = ellipsoid_mask(grid, radii)
    maps = np.stack(
        [ndimage.gaussian_filter(rng.standard_normal(grid), smooth_vox) for _ in range(n_maps)],
        axis=-1,
    ).astype(np.float32)
    maps /= maps.std()
    courses = rng.standard_normal((n_maps, n_t)).astype(np.float32)
    data = np.zeros(shape, dtype=np.float32)
    vox = np.flatnonzero(mask)
    flat = data.reshape(-1, n_t)
    for lo in range(0, vox.size, 20000):  # in blocks: no float64 or full-size temporaries
        idx = vox[lo : lo + 20000]
        block = maps.reshape(-1, n_maps)[idx] @ courses
        block += rng.standard_normal(block.shape, dtype=np.float32)
        if integer_levels:
            block = np.round(block * (integer_levels / 8.0))
        else:
            block = block * 50.0 + 1000.0  # BOLD-like scale, still continuous
        flat[idx] = block
    return data, mask


def save_nifti(path: Path, arr: np.ndarray) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(arr, np.diag([2.4, 2.4, 2.4, 1.0]))
    img.header.set_data_dtype(arr.dtype)
    if arr.ndim == 4:
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = 0.735  # UKB rfMRI TR
    nib.save(img, str(path))


def machine_info() -> dict:
    info = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "nproc": os.cpu_count(),
        "cpus_allowed": len(os.sched_getaffinity(0)),
    }
    try:
        import nibabel
        import scipy

        info["nibabel"], info["scipy"] = nibabel.__version__, scipy.__version__
    except ImportError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gb"] = round(int(line.split()[1]) * 1024 / 1e9, 1)
    except OSError:
        pass
    return info


# ---------------------------------------------------------------- subprocess modes
def child_load(args) -> dict:
    import nibabel as nib

    cpus = pin_cpus(args.cores)
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), cpu_s()
        data = nib.load(args.bold).get_fdata(dtype=np.float32)
        times.append(time.perf_counter() - t0)
        cpu.append(cpu_s() - c0)
        del data
    return {"load_s": min(times), "load_s_all": times, "load_cpu_s": min(cpu),
            "peak_gb": peak_gb(), "cpus": cpus}


def child_rviflow(args) -> dict:
    import nibabel as nib

    from rviflow.measures.reho import reho_map

    cpus = pin_cpus(args.cores)
    t0 = time.perf_counter()
    data = nib.load(args.bold).get_fdata(dtype=np.float32)
    mask = np.asanyarray(nib.load(args.mask).dataobj) > 0
    load_s = time.perf_counter() - t0
    peak_after_load = peak_gb()
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), cpu_s()
        w, used = reho_map(data, mask, args.neighbourhood, n_threads=args.cores)
        times.append(time.perf_counter() - t0)
        cpu.append(cpu_s() - c0)
    out = {
        "load_s": load_s,
        "reho_s": min(times),
        "reho_s_all": times,
        "reho_cpu_s": min(cpu),
        "peak_gb": peak_gb(),
        "peak_gb_after_load": peak_after_load,
        "n_voxels": int(mask.sum()),
        "n_used": int(used.sum()),
        "mean_w": float(w[used].mean()),
        "cpus": cpus,
    }
    if args.save:
        np.save(args.save, w)
    return out


def child_junifer(args) -> dict:
    import junifer
    from junifer.markers.reho._junifer_reho import JuniferReHo
    from junifer.pipeline import WorkDirManager

    cpus = pin_cpus(args.cores)
    WorkDirManager(workdir=args.workdir)
    out = {"junifer": junifer.__version__, "numpy": np.__version__, "cpus": cpus, "runs": {}}
    for nb in args.neighbourhoods:
        t0, c0 = time.perf_counter(), cpu_s()
        img, _ = JuniferReHo().compute(Path(args.bold), nb, Path(args.mask))
        seconds, cpu = time.perf_counter() - t0, cpu_s() - c0
        w = np.asarray(img.dataobj, dtype=np.float32)
        out["runs"][str(nb)] = {"total_s_incl_float64_load": seconds, "cpu_s": cpu}
        if args.save:
            np.save(f"{args.save}_{nb}.npy", w)
        del img, w
    out["peak_gb"] = peak_gb()
    return out


def run_child(python: str, mode: str, extra: list[str], env_src: bool = True) -> dict:
    env = dict(os.environ)
    if env_src:
        env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    # numpy's BLAS must not bring its own threads into the timing
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [python, str(Path(__file__).resolve()), "--child", mode, *extra]
    load_before = os.getloadavg()[0]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # other work on the machine inflates wall times: keep the 1-min load average as a witness
    out["loadavg_1min_before_after"] = [load_before, os.getloadavg()[0]]
    return out


def junifer_version_info(python: str) -> dict:
    code = (
        "import json, platform, numpy, junifer, nibabel, scipy;"
        "print(json.dumps({'python': platform.python_version(), 'numpy': numpy.__version__,"
        "'junifer': junifer.__version__, 'nibabel': nibabel.__version__,"
        "'scipy': scipy.__version__}))"
    )
    return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                     check=True).stdout)


# ---------------------------------------------------------------- main
def agreement(tmp: Path, jpy: str | None, cores: int) -> dict:
    """Max |W_junifer - W_rviflow| in the mask, 7/19/27 neighbours, with and without ties."""
    from rviflow.measures.reho import reho_map

    res = {"grid": list(AGREE["shape"])}
    for label, levels in (("continuous_no_ties", 0), ("integer_many_ties", 6)):
        data, mask = synth_run(AGREE["shape"], AGREE["radii"], seed=3, integer_levels=levels)
        bold, mpath = tmp / f"agree_{label}.nii.gz", tmp / f"agree_{label}_mask.nii.gz"
        save_nifti(bold, data)
        save_nifti(mpath, mask.astype(np.uint8))
        entry = {"n_voxels": int(mask.sum())}
        ours = {}
        for nb in (7, 19, 27):
            w, used = reho_map(data, mask, nb, n_threads=cores)
            ours[nb] = w
            entry["constant_voxels_dropped"] = int(mask.sum() - used.sum())
        if levels:
            sorted_t = np.sort(data[mask], axis=1)
            entry["voxels_with_ties_pct"] = float(100 * (np.diff(sorted_t, axis=1) == 0).any(1).mean())
        if jpy:
            run_child(jpy, "junifer", ["--bold", str(bold), "--mask", str(mpath),
                                       "--workdir", str(tmp / "junifer_work"),
                                       "--neighbourhoods", "7", "19", "27",
                                       "--save", str(tmp / f"junifer_{label}"),
                                       "--cores", str(cores)], env_src=False)
            for nb in (7, 19, 27):
                theirs = np.load(tmp / f"junifer_{label}_{nb}.npy")
                entry[f"max_abs_diff_{nb}"] = float(np.abs(theirs - ours[nb])[mask].max())
                entry[f"mean_w_{nb}"] = [float(ours[nb][mask].mean()), float(theirs[mask].mean())]
                entry[f"max_abs_diff_outside_mask_{nb}"] = float(np.abs(theirs[~mask]).max())
        res[label] = entry
    return res


def write_markdown(path: Path, r: dict) -> None:
    m, ours, load = r["machine"], r["rviflow"], r["load"]
    lines = [
        f"# ReHo benchmark ({'quick' if r['quick'] else 'UK Biobank size'})",
        "",
        f"{m['date']} · {m.get('cpu_model', '?')} · {m['nproc']} CPUs (runs pinned to "
        f"{r['cores']}) · {m.get('ram_gb', '?')} GB RAM · Python {m['python']}, "
        f"numpy {m['numpy']}",
        "",
        f"Data: {' x '.join(map(str, r['shape']))} float32, {ours['n_voxels']:,} mask voxels, "
        f"{r['file_mb']:.0f} MB .nii.gz; 27 neighbours.",
        "",
        "| step | wall s (best of repeats) | × load | CPU s | peak RSS GB |",
        "|---|---|---|---|---|",
        f"| nibabel load to float32 | {load['load_s']:.2f} | 1.0 | {load['load_cpu_s']:.2f} "
        f"| {load['peak_gb']:.2f} |",
        f"| rviflow reho_map (after load) | {ours['reho_s']:.2f} | {r['ratio_reho_to_load']:.2f} "
        f"| {ours['reho_cpu_s']:.2f} | {ours['peak_gb']:.2f} (load + ReHo) |",
    ]
    if r.get("junifer"):
        j = r["junifer"]
        lines.append(
            f"| junifer {j['junifer']} JuniferReHo (incl. its float64 load) | "
            f"{j['total_s']:.2f} | {j['total_s'] / load['load_s']:.2f} "
            f"| {j['runs']['27']['cpu_s']:.2f} | {j['peak_gb']:.2f} |"
        )
    g = r["goal"]
    lines += [
        "",
        f"Goal (ReHo ≤ {GOAL_RATIO:g}× load and ≤ {GOAL_SECONDS:g} s, peak ≤ {GOAL_GB:g} GB, "
        f"{GOAL_CORES} cores): time {'met' if g['time_met'] else 'MISSED'}, "
        f"memory {'met' if g['memory_met'] else 'MISSED'}.",
        "",
        "1-min load average before/after each step (other jobs inflate wall times): "
        + ", ".join(f"{k} {r[k]['loadavg_1min_before_after'][0]:.1f}/"
                    f"{r[k]['loadavg_1min_before_after'][1]:.1f}"
                    for k in ("load", "rviflow", "junifer") if k in r),
    ]
    if r.get("junifer"):
        lines.append(f"Benchmark-grid maps (27), junifer vs rviflow: max |ΔW| = "
                     f"{r['junifer']['max_abs_diff_vs_rviflow']:.1e}.")
    if "agreement" in r:
        a = r["agreement"]
        lines += ["", f"Agreement with junifer on {' x '.join(map(str, a['grid']))} "
                  "(max |ΔW| in mask, 7/19/27):"]
        for label in ("continuous_no_ties", "integer_many_ties"):
            e = a[label]
            diffs = [e.get(f"max_abs_diff_{nb}") for nb in (7, 19, 27)]
            txt = ", ".join("n/a" if d is None else f"{d:.1e}" for d in diffs)
            extra = (f"; {e['voxels_with_ties_pct']:.0f}% of voxels have ties"
                     if "voxels_with_ties_pct" in e else "")
            lines.append(f"- {label}: {txt}{extra}")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="44x44x32x200 grid instead of UKB size")
    ap.add_argument("--junifer-python", default="/tmp/vjunifer/bin/python",
                    help="interpreter of a venv with junifer==0.0.8 ('' to skip junifer)")
    ap.add_argument("--cores", type=int, default=GOAL_CORES)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--tmp", type=Path, default=None, help="work dir (default: a new temp dir)")
    # subprocess modes
    ap.add_argument("--child", choices=["load", "rviflow", "junifer"], help=argparse.SUPPRESS)
    ap.add_argument("--bold", help=argparse.SUPPRESS)
    ap.add_argument("--mask", help=argparse.SUPPRESS)
    ap.add_argument("--save", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--neighbourhood", type=int, default=27, help=argparse.SUPPRESS)
    ap.add_argument("--neighbourhoods", type=int, nargs="+", default=[27], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = {"load": child_load, "rviflow": child_rviflow, "junifer": child_junifer}
        print(json.dumps(fn[args.child](args)))
        return 0

    jpy = args.junifer_python if args.junifer_python and Path(args.junifer_python).exists() else None
    size = QUICK if args.quick else FULL
    args.results.mkdir(parents=True, exist_ok=True)
    stem = "bench_reho_quick" if args.quick else "bench_reho"
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmpdir:
        tmp = Path(tmpdir)
        t0 = time.perf_counter()
        data, mask = synth_run(size["shape"], size["radii"])
        bold, mpath = tmp / "sub-01_task-rest_bold.nii.gz", tmp / "sub-01_brainmask.nii.gz"
        save_nifti(bold, data)
        save_nifti(mpath, mask.astype(np.uint8))
        del data
        print(f"synthetic run written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        common = ["--bold", str(bold), "--mask", str(mpath), "--cores", str(args.cores),
                  "--repeats", str(args.repeats)]
        r = {"quick": args.quick, "shape": list(size["shape"]), "cores": args.cores,
             "file_mb": bold.stat().st_size / 1e6, "machine": machine_info()}
        r["load"] = run_child(sys.executable, "load", common)
        print(f"load: {r['load']}", file=sys.stderr)
        r["rviflow"] = run_child(sys.executable, "rviflow",
                                 common + ["--save", str(tmp / "rviflow_27.npy")])
        print(f"rviflow: {r['rviflow']}", file=sys.stderr)
        r["ratio_reho_to_load"] = r["rviflow"]["reho_s"] / r["load"]["load_s"]
        r["goal"] = {
            "ratio_max": GOAL_RATIO, "seconds_max": GOAL_SECONDS, "peak_gb_max": GOAL_GB,
            "time_met": r["ratio_reho_to_load"] <= GOAL_RATIO
            and r["rviflow"]["reho_s"] <= GOAL_SECONDS,
            "memory_met": r["rviflow"]["peak_gb"] <= GOAL_GB,
        }
        if jpy:
            r["junifer_env"] = junifer_version_info(jpy)
            j = run_child(jpy, "junifer", ["--bold", str(bold), "--mask", str(mpath),
                                           "--workdir", str(tmp / "junifer_work"),
                                           "--save", str(tmp / "junifer_full"),
                                           "--cores", str(args.cores)], env_src=False)
            j["total_s"] = j["runs"]["27"]["total_s_incl_float64_load"]
            theirs, ours = np.load(tmp / "junifer_full_27.npy"), np.load(tmp / "rviflow_27.npy")
            j["max_abs_diff_vs_rviflow"] = float(np.abs(theirs - ours).max())
            del theirs, ours
            r["junifer"] = j
            print(f"junifer: {j}", file=sys.stderr)
        r["agreement"] = agreement(tmp, jpy, args.cores)
        print(f"agreement: {r['agreement']}", file=sys.stderr)
    (args.results / f"{stem}.json").write_text(json.dumps(r, indent=2) + "\n")
    write_markdown(args.results / f"{stem}.md", r)
    print((args.results / f"{stem}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
