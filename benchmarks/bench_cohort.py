"""Benchmark the cohort statistics at UK Biobank scale.

Goals: (issue 5) 15,501 subjects x 83 regions x 3 measures, 20 sites -- ComBat, effect sizes and
RVI (5 folds) end to end in under 30 s on 2 cores; (issue 14) the co-localisation's label
permutation null of two measures -- 1,000 within-site diagnosis permutations, both d-maps
recomputed (Freedman-Lane, rviflow.cohort.permutation) -- in under 60 s on 2 cores.

What it does: simulates the cohort in memory (half MDD; age, sex; 20 sites with location and
scale offsets; a planted case effect in 12 regions per measure), then times, pinned to 2 CPUs
(``os.sched_setaffinity``, 2 BLAS threads):

1. ComBat (neuroHarmonize, empirical Bayes) per measure, diagnosis + age + sex preserved;
2. covariate-adjusted effect sizes per measure x region (statsmodels OLS, rviflow.cohort.effects);
3. cross-validated RVI per measure (rviflow.cohort.rvi.cross_validated_rvi, 5 folds, cohort-derived EP);
4. (separate goal) the label-permutation null of ReHo vs CBF co-localisation
   (rviflow.cohort.coloc.label_permutation_maps, ``--perms`` permutations, 83 + 83 d values each), checked
   against statsmodels on the first permutations;
5. (no goal; for the rvi rule's runtime) the RVI's label-permutation null of one measure
   (rviflow.cohort.rvi_null, ``--rvi-perms`` permutations).

Results (wall and CPU seconds per stage, peak RSS, machine info, load average) go to
``benchmarks/results/bench_cohort.json`` and ``bench_cohort.md``.

Usage::

    PYTHONPATH=src /tmp/v1/bin/python benchmarks/bench_cohort.py [--subjects 15501] [--sites 20]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")

import datetime as dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
GOAL_SECONDS, GOAL_CORES = 30.0, 2
PERM_GOAL_SECONDS = 60.0
MEASURES = ("reho", "cbf", "thickness")


def simulate(n: int, n_regions: int, n_sites: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = pd.DataFrame(dict(participant_id=[f"sub-{i:06d}" for i in range(n)],
                          diagnosis=np.where(rng.random(n) < 0.5, "MDD", "HC"), age=rng.uniform(40, 80, n).round(1),
                          sex=rng.choice(["F", "M"], n), site=[f"site{s:02d}" for s in rng.integers(0, n_sites, n)]))
    case = (p["diagnosis"] == "MDD").to_numpy()
    site_idx = p["site"].str[4:].astype(int).to_numpy()
    loc, scale = rng.normal(0, 0.5, (n_sites, n_regions)), rng.uniform(0.7, 1.4, (n_sites, n_regions))
    regions = [f"region{j:02d}" for j in range(n_regions)]
    values = {}
    for k, m in enumerate(MEASURES):
        y = loc[site_idx] + scale[site_idx] * rng.normal(size=(n, n_regions)) - 0.01 * (p["age"].to_numpy()[:, None] - 60)
        y[case, :12] -= (0.3, 0.2, 0.1)[k]
        values[m] = pd.DataFrame(y, index=p["participant_id"], columns=regions)
    return p, values


def _check_permutation(values: pd.DataFrame, design: pd.DataFrame, sites: pd.Series) -> float:
    """Max |d| difference between rviflow.cohort.permutation and statsmodels refits on permuted residuals."""
    import statsmodels.api as sm

    from rviflow.cohort.permutation import FreedmanLane, within_block_permutations

    X = design.loc[values.index].to_numpy(float)
    Y = values.iloc[:, :3].to_numpy(float)
    perms = within_block_permutations(sites.reindex(values.index).to_numpy(), len(Y), 3, seed=1)
    d = FreedmanLane(Y, X, 1).d(perms)
    Z = np.delete(X, 1, 1)
    worst = 0.0
    for i, p in enumerate(perms):
        for j in range(Y.shape[1]):
            red = sm.OLS(Y[:, j], Z).fit()
            full = sm.OLS(red.fittedvalues + red.resid[p], X).fit()
            worst = max(worst, abs(full.params[1] / np.sqrt(full.scale) - d[i, j]))
    return float(worst)


def machine() -> dict:
    info = dict(python=platform.python_version(), platform=platform.platform(), processor=platform.processor(),
                cpus_visible=os.cpu_count(), cpus_used=len(os.sched_getaffinity(0)), load_average=os.getloadavg())
    try:
        model = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        info["cpu_model"] = model[0] if model else ""
        info["mem_total_gb"] = round(int(open("/proc/meminfo").readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    import neuroHarmonize  # noqa: F401
    import sklearn
    import statsmodels

    info["versions"] = dict(numpy=np.__version__, pandas=pd.__version__, statsmodels=statsmodels.__version__,
                            scikit_learn=sklearn.__version__)
    return info


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=15501)
    ap.add_argument("--regions", type=int, default=83)
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--perms", type=int, default=1000)
    ap.add_argument("--rvi-perms", type=int, default=1000, help="label permutations of the RVI's AUC p (one measure)")
    ap.add_argument("--out", default=str(HERE / "results" / "bench_cohort"))
    a = ap.parse_args()
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:GOAL_CORES])

    from rviflow.cohort.effects import design_matrix, effect_sizes
    from rviflow.cohort.harmonize import combat_covariates, fit_combat
    from rviflow.cohort.rvi import cross_validated_rvi

    p, values = simulate(a.subjects, a.regions, a.sites)
    timings = {}

    def timed(name, fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        timings[name] = dict(wall_s=round(time.perf_counter() - w, 2), cpu_s=round(time.process_time() - c, 2))
        print(f"{name}: {timings[name]['wall_s']} s", flush=True)
        return out

    start = time.perf_counter()
    design = design_matrix(p, "diagnosis", "MDD", "HC", ["age", "sex"], "site")
    sites = p.set_index("participant_id")["site"]
    cov = combat_covariates(design, sites)
    harmonised = timed("combat", lambda: {m: fit_combat(v, cov)[1] for m, v in values.items()})
    effects = timed("effect_sizes", lambda: pd.concat([effect_sizes(v, design, m) for m, v in harmonised.items()]))
    rvi = timed("rvi_5fold", lambda: {m: cross_validated_rvi(v, design, m, a.folds, 0, sites, "site")
                                      for m, v in harmonised.items()})
    total = time.perf_counter() - start
    from rviflow.cohort.coloc import label_permutation_maps

    t0 = time.perf_counter()
    d_reho, d_cbf, perm_r, _ = timed(f"coloc_label_perm_{a.perms}", lambda: label_permutation_maps(
        harmonised["reho"], harmonised["cbf"], design, sites, a.perms, seed=0, what="reho vs cbf"))
    perm_total = time.perf_counter() - t0
    perm_check = _check_permutation(harmonised["reho"], design, sites)
    from rviflow.cohort.rvi_null import rvi_permutation_null

    timed(f"rvi_label_perm_{a.rvi_perms}_one_measure", lambda: rvi_permutation_null(
        harmonised["reho"], design, "reho", a.folds, 0, sites, "site", n_perm=a.rvi_perms))
    from rviflow.cohort.discrimination import auc_delong

    case = design["case"].to_numpy() == 1
    checks = {m: dict(auc_rvi=round(auc_delong(r["rvi"].to_numpy(), case)[0], 3),
                      mean_d_planted=round(float(effects[effects["measure"] == m]["d"].iloc[:12].mean()), 3))
              for m, r in rvi.items()}
    res = dict(date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), subjects=a.subjects,
               regions=a.regions, measures=len(MEASURES), sites=a.sites, folds=a.folds, timings=timings,
               total_wall_s=round(total, 2), goal_s=GOAL_SECONDS, goal_met=total < GOAL_SECONDS,
               peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
               checks=checks, machine=machine(),
               label_permutation=dict(perms=a.perms, maps=2, regions_per_map=a.regions, wall_s=round(perm_total, 2),
                                      goal_s=PERM_GOAL_SECONDS, goal_met=perm_total < PERM_GOAL_SECONDS,
                                      null_r_mean=round(float(np.mean(perm_r)), 3),
                                      max_abs_diff_vs_statsmodels=perm_check))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".json").write_text(json.dumps(res, indent=2) + "\n")
    md = [f"# bench_cohort ({res['date']})", "",
          f"{a.subjects} subjects x {a.regions} regions x {len(MEASURES)} measures, {a.sites} sites, "
          f"{a.folds}-fold RVI, {GOAL_CORES} cores.", "",
          "| stage | wall (s) | CPU (s) |", "|---|---|---|",
          *[f"| {k} | {v['wall_s']} | {v['cpu_s']} |" for k, v in timings.items() if "label_perm" not in k],
          f"| **total** | **{res['total_wall_s']}** | |", "",
          f"Goal < {GOAL_SECONDS} s: {'met' if res['goal_met'] else 'NOT met'}; peak RSS {res['peak_rss_gb']} GB.",
          f"Sanity: {checks}", "",
          f"Co-localisation label-permutation null (separate goal < {PERM_GOAL_SECONDS} s): {a.perms} within-site "
          f"permutations of the diagnosis, ReHo and CBF d-maps ({a.regions} regions each) recomputed by "
          f"Freedman-Lane: {perm_total:.1f} s -- {'met' if perm_total < PERM_GOAL_SECONDS else 'NOT met'}; "
          f"max |d - statsmodels d| on 3 permutations x 3 regions = {perm_check:.1e} "
          f"(CPU {timings[f'coloc_label_perm_{a.perms}']['cpu_s']} s).", "",
          f"RVI discrimination p by label permutation (cohort.rvi.n_perm; no goal set): {a.rvi_perms} permutations "
          f"of one measure, {a.folds}-fold cross-validation repeated from cached label-free parts: "
          f"{timings[f'rvi_label_perm_{a.rvi_perms}_one_measure']['wall_s']} s.", "",
          f"Machine: {res['machine'].get('cpu_model', '')}, load average {res['machine']['load_average']} "
          "(a shared machine inflates wall times; CPU seconds are the steadier number)."]
    Path(a.out + ".md").write_text("\n".join(md) + "\n")
    print(f"total {total:.1f} s (goal {GOAL_SECONDS} s) -> {a.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
