"""Batch mode for cohorts of thousands: many scans' per-scan steps in one job (and, in per-scan
mode, one scan's BOLD chain in one job: a batch of one, :func:`run_batch`).

Snakemake spends a few milliseconds on every job it plans (inputs, outputs, resources), so a
UK Biobank-size cohort as one job per step per scan (5 x 15,501 = 77,500 jobs) takes minutes to
plan and floods a cluster queue. With ``batch_size: N`` the per-scan steps of N scans run as
one job, one after the other, through exactly the functions the per-scan jobs call
(:mod:`rviflow.pipeline.steps`), writing the same files; the job's declared output is a record of its
scans (``work/batches/<chain>/batch-<id>.tsv``).

Batch membership is kept in a manifest (``work/batches_<chain>.tsv``) so that it is stable
across runs: scans already assigned keep their batch, new scans go into new batches. Adding
subjects therefore runs only the new batches (plus the cohort rules), not the finished ones.

``batch_size: auto`` (the default) chooses per chain (:func:`batch_size_for`): one job per step
per scan below a threshold, batches above it. A scan finished by a per-scan job (or by an earlier
batch) is kept, not recomputed, when its batch runs (:func:`finished`), so crossing the threshold
as a cohort grows costs only the new scans.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from rviflow.io.bids import atomic_path, read_json, write_tsv
from rviflow.measures.registry import REGISTRY, WIRED, resolve
from rviflow.pipeline.steps import denoise_step, measure_step, parcellate_step
from rviflow.io.nifti import release_series, share_reads

#: step name -> function: the shared steps (``measure``: any generated measure's step) plus each
#: hand-wired measure's own step
STEPS = {"denoise": denoise_step, "parcellate": parcellate_step, "measure": measure_step,
         **{REGISTRY[m].chain[-2]: resolve(REGISTRY[m].step) for m in WIRED}}


def batch_size_for(batch_size: int | str, n_scans: int, manifest: str | Path, min_scans: int = 1000,
                   size: int = 100) -> int:
    """Scans per batch job of a chain (0: one job per step per scan).

    ``batch_size`` is the config's: an integer is used as given; ``"auto"`` gives ``size`` when the
    chain has ``min_scans`` scans or more, or was batched before (its ``manifest`` exists: a
    cohort shrinking below the threshold keeps its batches rather than switching back), else 0.
    """
    if batch_size != "auto":
        return int(batch_size)
    return size if n_scans >= min_scans or Path(manifest).is_file() else 0


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


def run_batch(plan: list[dict], record: str | Path | None, remove: list[str] = (), threads: int | None = None,
              keep_finished: bool = True) -> pd.DataFrame:
    """Run each scan's steps in order (``plan``: one dict per scan with ``key``, ``participant_id``
    and ``steps``, a list of {"step": name in STEPS, "kwargs": {...}}); then delete ``remove``
    (intermediates the per-scan jobs would have kept as temp files) and write the record: one row
    per scan with its status (ok, or the first failure's reason from the step sidecars).

    A subject's bad input is handled inside the step functions exactly as in a per-scan job
    (failure sidecar, placeholders, on_subject_error); anything else stops the batch.
    ``threads`` (the batch job's ``threads:``) replaces the planned threads of steps that take them.
    ``keep_finished``: a scan already finished (:func:`finished`) is kept, not recomputed (batch
    jobs; a per-scan chain job, which Snakemake runs only when its outputs are due, passes False).
    ``record``: None writes no record (a per-scan chain job declares its files instead).
    """
    rows = []
    removed = set(map(str, remove))
    for scan in plan:
        reason = ""
        if keep_finished and finished(scan, removed):
            print(f"{scan['key']}: kept (finished earlier: outputs newer than inputs, same parameters)", flush=True)
            rows.append(dict(scan=scan["key"], participant_id=scan["participant_id"], status="ok", reason=""))
            continue
        series = [s for s in scan["steps"] if s["step"] == "denoise"]
        # a chain making two series (denoised for ReHo, regressed for ALFF) reads the BOLD once
        share_reads(len(series) > 1)
        try:
            for step in scan["steps"]:
                kwargs = step["kwargs"]
                if threads and "threads" in kwargs:
                    kwargs = {**kwargs, "threads": threads}
                if step["step"] == "denoise" and step is not series[0]:
                    release_series()  # the measures on the previous series are done: free it first
                if step["step"] == "denoise" and str(kwargs.get("out_bold")) in removed:
                    # a temporary series: the measures after it read it from memory (one load of
                    # the BOLD per scan, no 4-D intermediate written and read back)
                    kwargs = {**kwargs, "in_memory": True}
                ok = STEPS[step["step"]](**kwargs)
                if not ok and not reason:
                    reason = _failure_reason(step)
        finally:
            release_series()
            share_reads(False)
        rows.append(dict(scan=scan["key"], participant_id=scan["participant_id"],
                         status="failed" if reason else "ok", reason=reason))
    for path in remove:
        if os.path.exists(path):
            os.remove(path)
    table = pd.DataFrame(rows, columns=["scan", "participant_id", "status", "reason"])
    if record is not None:
        with atomic_path(record) as tmp:
            table.to_csv(tmp, sep="\t", index=False)
    return table


#: step keyword arguments naming an input file (a scan is finished only if its outputs are newer)
_INPUT_KEYS = ("bold", "mask", "source_file", "reference_mask", "t1w", "template_xfm", "atlas_image", "atlas_labels",
               "brain_mask", "reference_mask_file")


def _step_outputs(kwargs: dict, removed: set[str]) -> list[str]:
    """Files a step writes (``out_*`` arguments and ``outputs`` values), but temporary
    intermediates (``removed``) and the optional multi-PLD transit-time map."""
    outs = [v for k, v in kwargs.items() if k.startswith("out_") and isinstance(v, str)]
    outs += [v for k, v in (kwargs.get("outputs") or {}).items() if k != "att"]
    return [o for o in outs if str(o) not in removed]


def _same_parameters(options: dict, recorded: dict) -> bool:
    """Every option the sidecar records (under its name; else under a longer name it starts, e.g.
    smoothing_fwhm -> smoothing_fwhm_mreho_zreho) has the planned value."""
    for key, value in options.items():
        names = [key] if key in recorded else [n for n in recorded if n.startswith(key + "_")]
        if any(recorded[n] != value and not (isinstance(value, (list, tuple)) and list(recorded[n]) == list(value))
               for n in names):
            return False
    return True


def finished(scan: dict, removed: set[str] = frozenset()) -> bool:
    """True when every step of ``scan`` (a run_batch plan entry) has all its outputs, its JSON
    sidecars say ``status: ok`` with the planned parameters (``options``; parcels: the atlas), and no input file is
    newer than the oldest output: such a scan (e.g. done by a per-scan job before ``batch_size:
    auto`` switched to batches) is kept rather than recomputed. Temporary intermediates
    (``removed``) need not exist."""
    outputs, inputs = [], []
    for step in scan["steps"]:
        kw = step["kwargs"]
        outs = _step_outputs(kw, removed)
        if not outs or not all(os.path.isfile(o) for o in outs):
            return False
        for side in (o for o in outs if o.endswith(".json")):
            try:
                rec = read_json(side)
            except (OSError, ValueError):
                return False
            if rec.get("status") != "ok" or not _same_parameters(kw.get("options") or {}, rec.get("Parameters") or {}):
                return False
            if "atlas_image" in kw and rec.get("Atlas", kw["atlas_image"]) != kw["atlas_image"]:
                return False  # parcels of another atlas (config atlas.image changed)
        outputs += outs
        inputs += [kw[k] for k in _INPUT_KEYS if isinstance(kw.get(k), str) and kw[k] not in removed]
    newest_input = max((os.path.getmtime(i) for i in inputs if os.path.exists(i)), default=0.0)
    return min(os.path.getmtime(o) for o in outputs) >= newest_input


def _failure_reason(step: dict) -> str:
    """The reason in a failed step's sidecar (the JSON output every step writes)."""
    kw = step["kwargs"]
    sidecar = kw.get("out_json") or (kw.get("outputs") or {}).get("json")
    try:
        return str(read_json(sidecar).get("reason", "failed"))
    except (OSError, ValueError, TypeError):
        return "failed"
