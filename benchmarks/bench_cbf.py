"""Benchmark the bounded multi-PLD CBF fit on a series the size of the BIDS example 2d_mb_pcasl.

2d_mb_pcasl (HCP-Aging multiband PCASL, bids-standard/bids-examples) is 86 × 86 × 60 voxels ×
90 volumes: 5 PLDs (0.2-2.2 s) × 6-12 pairs, 2 noRF and 2 M0 volumes, 10 distinct slice times
(multiband 6). This script builds a synthetic series of that shape with the sidecar's real
acquisition parameters (tests/data/bids_examples_asl), GM CBF 60 / WM 20 and grey-matter SNR 1
per pair, and times ``rviflow.measures.cbf.quantify.quantify`` with the default fit (ATT from the smoothed signal)
and with the voxelwise joint fit (``att_fwhm`` 0), in this process (2 threads at most).

Results: ``benchmarks/results/bench_cbf.json`` and ``bench_cbf.md`` (machine info, wall and CPU
seconds, peak RSS, fit QC counts). Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_cbf.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
SIDECAR = HERE.parent / "tests" / "data" / "bids_examples_asl" / "2d_mb_pcasl" / "sub-1" / "perf" / "sub-1"


def build(shape, seed=0):
    import pandas as pd

    from rviflow.io.asl import asl_params
    from rviflow.measures.cbf.kinetic import kinetic_signal

    meta = json.loads(Path(f"{SIDECAR}_asl.json").read_text())
    ctx = pd.read_csv(f"{SIDECAR}_aslcontext.tsv", sep="\t")["volume_type"].tolist()
    st = np.asarray(meta["SliceTiming"], float)
    shape = shape[:2] + (len(st),)
    idx = np.indices(shape).astype(float)
    r = np.sqrt(sum(((idx[i] - (n - 1) / 2) / (0.45 * n)) ** 2 for i, n in enumerate(shape)))
    brain, wm = r <= 1, r <= 0.6
    gm = brain & ~wm
    cbf, att = np.where(gm, 60.0, np.where(wm, 20.0, 0.0)), np.where(gm, 1.0, 1.3)
    plds, taus = np.asarray(meta["PostLabelingDelay"]), np.asarray(meta["LabelingDuration"])
    off = np.broadcast_to(st, shape)
    rng = np.random.default_rng(seed)
    vols, dms = [], []
    for j, kind in enumerate(ctx):
        dm = kinetic_signal(cbf, att, (plds[j] + off)[..., None], "PCASL", taus[j], 0.85, 1.65, m0=1000.0)[..., 0]
        v = {"control": np.full(shape, 600.0), "label": 600.0 - dm, "m0scan": np.full(shape, 1000.0)}.get(kind)
        if kind == "label":
            dms.append(dm[gm].mean())
        vols.append(np.zeros(shape) if v is None else v)
    data = np.stack(vols, axis=3)
    data += rng.normal(0, np.mean(dms) / np.sqrt(2), data.shape)
    return data, asl_params(meta, ctx), brain, gm


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="43 x 43 x 60 instead of 86 x 86 x 60")
    a = ap.parse_args()
    from rviflow.measures.cbf.quantify import CbfOptions, quantify

    shape = (43, 43, 60) if a.quick else (86, 86, 60)
    data, params, brain, gm = build(shape)
    rows = []
    for label, opts in (("default (ATT from smoothed signal)", CbfOptions()),
                        ("voxelwise joint fit (att_fwhm 0)", CbfOptions(att_fwhm=0))):
        t0, c0 = time.perf_counter(), time.process_time()
        res = quantify(data, params, brain, (2.5, 2.5, 2.5), options=opts, gm_mask=gm)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append(dict(fit=label, voxels=int(brain.sum()), wall_s=round(wall, 2), cpu_s=round(cpu, 2),
                         gm_median=round(float(np.median(res.cbf[gm])), 2),
                         wm_mean=round(float(res.cbf[brain & ~gm].mean()), 2),
                         **{k: v for k, v in res.qc.items() if k.startswith("fit_")}))
    info = dict(date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), host=platform.node(),
                cpu=platform.processor() or platform.machine(), cpus=os.cpu_count(), shape=list(data.shape),
                load_avg=os.getloadavg(), peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    name = "bench_cbf_quick" if a.quick else "bench_cbf"
    (out / f"{name}.json").write_text(json.dumps(dict(machine=info, rows=rows), indent=1))
    cols = list(rows[0])
    md = [f"# Multi-PLD CBF fit, 2d_mb_pcasl-sized series {data.shape}\n",
          f"{info['date']}, {info['host']}, {info['cpu']}, {info['cpus']} CPUs, load {info['load_avg']}, "
          f"peak RSS {info['peak_rss_mb']} MB. Planted GM 60 / WM 20 ml/100 g/min, GM SNR 1 per pair.\n",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    (out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
