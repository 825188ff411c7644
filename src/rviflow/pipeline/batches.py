"""Batch mode for cohorts of thousands: many scans' per-scan steps in one job.

Snakemake spends a few milliseconds on every job it plans (inputs, outputs, resources), so a
UK Biobank-size cohort as one job per step per scan (5 x 15,501 = 77,500 jobs) takes minutes to
plan and floods a cluster queue. With ``batch_size: N`` the per-scan steps of N scans run as
one job, one after the other, through exactly the functions the per-scan jobs call
(:mod:`rviflow.pipeline.steps`), writing the same files; the job's declared output is a record of its
scans (``work/batches/<chain>/batch-<id>.tsv``).

Batch membership is kept in a manifest (``work/batches_<chain>.tsv``) so that it is stable
across runs: scans already assigned keep their batch, new scans go into new batches. Adding
subjects therefore runs only the new batches (plus the cohort rules), not the finished ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from rviflow.io.bids import atomic_path, read_json, write_tsv
from rviflow.measures.registry import REGISTRY, WIRED, resolve
from rviflow.pipeline.steps import denoise_step, measure_step, parcellate_step

#: step name -> function: the shared steps (``measure``: any generated measure's step) plus each
#: hand-wired measure's own step
STEPS = {"denoise": denoise_step, "parcellate": parcellate_step, "measure": measure_step,
         **{REGISTRY[m].chain[-2]: resolve(REGISTRY[m].step) for m in WIRED}}


def assign_batches(keys: list[str], manifest: str | Path, size: int) -> dict[str, list[str]]:
    """Batches of at most ``size`` scans, stable across runs through ``manifest``.

    Scans listed in the manifest keep their batch (scans gone from ``keys`` drop out of it);
    scans not yet listed fill new batches, numbered after the highest existing one. The manifest
    is rewritten (atomically) only when it changes. Returns {batch id: sorted scan keys}.
    """
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    manifest = Path(manifest)
    wanted = set(keys)
    old = pd.read_csv(manifest, sep="\t", dtype=str) if manifest.is_file() else pd.DataFrame(columns=["scan", "batch"])
    kept = old[old["scan"].isin(wanted)]
    new = sorted(wanted - set(kept["scan"]))
    start = int(old["batch"].astype(int).max()) + 1 if len(old) else 0
    added = pd.DataFrame({"scan": new, "batch": [f"{start + i // size:05d}" for i in range(len(new))]})
    table = pd.concat([kept, added], ignore_index=True).sort_values(["batch", "scan"], ignore_index=True)
    if not table.equals(old.reset_index(drop=True)):
        manifest.parent.mkdir(parents=True, exist_ok=True)
        write_tsv(table, manifest)
    return {b: sorted(g["scan"]) for b, g in table.groupby("batch")}


def run_batch(plan: list[dict], record: str | Path, remove: list[str] = (), threads: int | None = None) -> pd.DataFrame:
    """Run each scan's steps in order (``plan``: one dict per scan with ``key``, ``participant_id``
    and ``steps``, a list of {"step": name in STEPS, "kwargs": {...}}); then delete ``remove``
    (intermediates the per-scan jobs would have kept as temp files) and write the record: one row
    per scan with its status (ok, or the first failure's reason from the step sidecars).

    A subject's bad input is handled inside the step functions exactly as in a per-scan job
    (failure sidecar, placeholders, on_subject_error); anything else stops the batch.
    ``threads`` (the batch job's ``threads:``) replaces the planned threads of steps that take them.
    """
    rows = []
    for scan in plan:
        reason = ""
        for step in scan["steps"]:
            kwargs = step["kwargs"]
            if threads and "threads" in kwargs:
                kwargs = {**kwargs, "threads": threads}
            ok = STEPS[step["step"]](**kwargs)
            if not ok and not reason:
                reason = _failure_reason(step)
        rows.append(dict(scan=scan["key"], participant_id=scan["participant_id"],
                         status="failed" if reason else "ok", reason=reason))
    for path in remove:
        if os.path.exists(path):
            os.remove(path)
    table = pd.DataFrame(rows, columns=["scan", "participant_id", "status", "reason"])
    with atomic_path(record) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return table


def _failure_reason(step: dict) -> str:
    """The reason in a failed step's sidecar (the JSON output every step writes)."""
    kw = step["kwargs"]
    sidecar = kw.get("out_json") or (kw.get("outputs") or {}).get("json")
    try:
        return str(read_json(sidecar).get("reason", "failed"))
    except (OSError, ValueError, TypeError):
        return "failed"
