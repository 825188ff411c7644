"""Benchmark: gene-map correlations against spatial null maps, at AHBA size.

Goals on 2 cores, real AHBA Desikan-Killiany table (left-hemisphere cortex, the default: 34 regions;
--both-hemispheres: 68): 15,633 genes x 1,000 null maps correlated and turned into spatial
p-values in < 30 s; the ensemble-null enrichment of GO BP (15-500 genes, ~4,600 sets) against the
gene rankings of all 1,000 null maps (null rankings + set scores + both-tail over-representation,
all null rankings together) in < 60 s. Also times the null-map generation (BrainSMASH, spin), the
PLS1 bootstrap (1,000 resamples) and, for comparison, gseapy's GSEA prerank with 100 gene-label
permutations (--gsea), and checks the matrix-product correlations against a plain per-gene loop.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_transcriptomics.py [--cores 2] [--n-nulls 1000] [--gsea]

Writes results/bench_transcriptomics.{json,md}. Wall times are the best of --repeats; the JSON
also records CPU seconds and the load average (other jobs on a shared machine inflate wall times).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
from bench_reho import machine_info, pin_cpus  # noqa: E402 (one place for machine info and CPU pinning)


def timed(fn, repeats: int):
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        load0 = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"wall_s": min(walls), "wall_s_all": walls, "cpu_s": min(cpus), "load_before": load0,
            "load_after": os.getloadavg()[0]}, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--n-nulls", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--both-hemispheres", action="store_true", help="left and right cortex (68 regions)")
    ap.add_argument("--gsea", action="store_true", help="also time gseapy prerank (100 permutations)")
    ap.add_argument("--out", default=str(RESULTS / "bench_transcriptomics"))
    args = ap.parse_args()
    cpus = pin_cpus(args.cores)

    import numpy as np
    import pandas as pd

    from rviflow.transcriptomics.enrichment import ensemble_enrichment, null_rankings, prerank, read_gmt
    from rviflow.transcriptomics.expression import read_expression_table
    from rviflow.transcriptomics.nulls import null_maps
    from rviflow.preprocess.parcellate import DK_LABELS, default_atlas, read_labels
    from rviflow.io.resources import dk_expression_table, gene_set_file
    from rviflow.synth.cohort import PLANTED_D, PLANTED_REGIONS
    from rviflow.transcriptomics.association import bootstrap_pls1_z, correlate, select_regions, spatial_p

    labels = read_labels(DK_LABELS)
    expr = read_expression_table(dk_expression_table(), labels)
    rng = np.random.default_rng(0)
    brain_map = pd.Series([PLANTED_D if lab in PLANTED_REGIONS else 0.0 for lab in labels["label"]],
                          index=labels["name"]) + rng.normal(0, 0.3, len(labels))
    regions = select_regions(labels, expr, brain_map, cortex_only=True, left_only=not args.both_hemispheres)
    x = expr.loc[regions].to_numpy(np.float64)
    y = brain_map[regions].to_numpy()
    res = {"machine": machine_info(), "cpus": cpus, "n_regions": len(regions), "n_genes": x.shape[1],
           "n_nulls": args.n_nulls}

    atlas = default_atlas()[0]
    res["brainsmash"], nulls = timed(lambda: null_maps(brain_map[regions], "brainsmash", atlas, labels,
                                                       args.n_nulls, 0), 1)
    res["spin"], _ = timed(lambda: null_maps(brain_map[regions], "spin", atlas, labels, args.n_nulls, 0), 1)

    def corr_and_p():
        r = correlate(x, y)
        return r, spatial_p(r, correlate(x, nulls))

    res["correlation"], (r, p) = timed(corr_and_p, args.repeats)
    # plain per-gene loop on 200 genes x 50 nulls: same numbers
    plain = np.array([[np.corrcoef(nulls[k], x[:, g])[0, 1] for g in range(200)] for k in range(50)])
    res["max_abs_diff_vs_loop"] = float(np.abs(plain - correlate(x[:, :200], nulls[:50])).max())
    w1 = r / np.linalg.norm(r)
    res["pls1_bootstrap_1000"], _ = timed(lambda: bootstrap_pls1_z(x, y, w1, 1000, 0), 1)
    gmt = gene_set_file("go_bp")
    sets = read_gmt(gmt)
    ranking = pd.Series(r, index=expr.columns)

    def ensemble():
        return ensemble_enrichment(ranking, null_rankings(x, nulls, "r"), sets, "both", 15, 500, 500)

    res["ensemble_go_bp"], (ens, _) = timed(ensemble, args.repeats)
    res["ensemble_go_bp"]["n_sets"] = len(ens)
    if args.gsea:
        res["prerank_go_bp_100perm"], pre = timed(lambda: prerank(ranking, sets, 100, 0, 15, 500, args.cores), 1)
        res["prerank_go_bp_100perm"]["n_sets"] = len(pre)
    res["goal_met"] = res["correlation"]["wall_s"] < 30 and res["ensemble_go_bp"]["wall_s"] < 60

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    m = res["machine"]
    lines = [
        "# Transcriptomics benchmark (AHBA size)", "",
        f"{m['date']} · {m.get('cpu_model', '?')} · {m['nproc']} CPUs (runs pinned to {len(cpus)}) · "
        f"{m.get('ram_gb', '?')} GB RAM · Python {m['python']}, numpy {m['numpy']}", "",
        f"Data: real AHBA Desikan-Killiany table, {res['n_regions']} cortical regions "
        f"({'both hemispheres' if args.both_hemispheres else 'left hemisphere'}) x {res['n_genes']:,} genes; "
        f"{args.n_nulls} null maps.", "",
        "| step | wall s | CPU s | load before/after |", "|---|---|---|---|",
    ]
    names = [("correlation",
              f"r + spatial p, {res['n_genes']:,} genes x {args.n_nulls} nulls (best of {args.repeats})"),
             ("brainsmash", f"BrainSMASH null maps ({args.n_nulls})"), ("spin", f"spin null maps ({args.n_nulls})"),
             ("pls1_bootstrap_1000", "PLS1 weight bootstrap (1,000 resamples)"),
             ("ensemble_go_bp", f"ensemble-null enrichment, GO BP 15-500 genes ({res['ensemble_go_bp']['n_sets']:,} "
                                f"sets) x {args.n_nulls} null rankings, both tails + ORA (best of {args.repeats})"),
             ("prerank_go_bp_100perm", "GSEA prerank, GO BP 15-500 genes, 100 permutations")]
    for key, label in names:
        if key in res:
            t = res[key]
            load = f"{t['load_before']:.1f}/{t['load_after']:.1f}"
            lines.append(f"| {label} | {t['wall_s']:.2f} | {t['cpu_s']:.2f} | {load} |")
    lines += ["", f"Goals (correlations < 30 s, ensemble enrichment < 60 s on 2 cores): "
                  f"{'met' if res['goal_met'] else 'NOT met'}.",
              f"Matrix product vs plain per-gene np.corrcoef loop (200 genes x 50 nulls): max |Δr| = "
              f"{res['max_abs_diff_vs_loop']:.1e}."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if res["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
