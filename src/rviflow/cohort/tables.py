"""Cohort assembly: per-scan parcel rows -> one subject x region table, the QC table, effect sizes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rviflow.io.scans import SCAN_COLUMNS

from rviflow.io.bids import parse_entities, read_json, write_tsv
from rviflow.cohort.effects import design_matrix, effect_sizes
from rviflow.errors import InputError

QC_COLUMNS = ["participant_id", "session", "run", "acq", "step", "status", "reason"]


def _status(sidecar: str | Path) -> dict:
    p = Path(sidecar)
    if not p.exists() or p.stat().st_size == 0:
        return {"status": "failed", "reason": f"sidecar missing: {p}"}
    return read_json(p)


def gather_parcels(
    parcel_files: list[str], parcel_sidecars: list[str], step_sidecars: dict[str, list[str]] | None = None,
    parcellate_step: str = "parcellate",
) -> tuple[pd.DataFrame, list[dict]]:
    """Stack per-scan parcel rows of successful scans; QC rows for every scan and step.

    Parameters
    ----------
    parcel_files, parcel_sidecars : lists of paths, aligned
        Outputs of the per-scan parcellation step.
    step_sidecars : {step: [sidecar per scan]}, optional
        Sidecars of earlier steps (aligned with ``parcel_files``) whose QC numbers go into the
        QC table of successful scans (e.g. volumes kept, mean FD, zero-variance voxels).
    parcellate_step : str
        Name of the parcellation step in the QC rows (e.g. parcellate_cbf beside ReHo's parcellate).

    Returns
    -------
    table : DataFrame (scans x [participant_id, session, run, acq, n_volumes_kept, mean_fd_mm,
        voxel_size_mm, regions...]): run / acq from the file name ('' when absent), volumes kept
        after censoring, mean framewise displacement (mm) and voxel size ('2x2x2') from the
        denoising sidecar (NaN / '' without one)
    qc_rows : list of dict with :data:`QC_COLUMNS`
    """
    rows, qc = [], []
    step_sidecars = step_sidecars or {}
    for i, (tsv, side) in enumerate(zip(parcel_files, parcel_sidecars)):
        rec = _status(side)
        ents = parse_entities(Path(tsv).name)
        where = dict(session=ents.get("ses", ""), run=ents.get("run", ""), acq=ents.get("acq", ""))
        if rec.get("status") != "ok":
            pid = rec.get("participant_id", Path(tsv).name.split("_")[0])
            step = rec.get("step", "parcellate")
            qc.append(dict(participant_id=pid, **where, step=parcellate_step if step == "parcellate" else step,
                           status="failed", reason=rec.get("reason", "unknown")))
            continue
        row = pd.read_csv(tsv, sep="\t", dtype={"participant_id": str, "session": str}, na_values="n/a")
        pid, ses = row.loc[0, "participant_id"], row.loc[0, "session"]
        where["session"] = "" if pd.isna(ses) else str(ses)
        scan_qc = {}
        for step, sides in step_sidecars.items():
            srec = _status(sides[i])
            q = srec.get("QC", {})
            scan_qc.update({k: q[k] for k in ("n_volumes_kept", "mean_fd_mm", "voxel_size_mm") if k in q})
            detail = ", ".join(f"{k}={v}" for k, v in q.items() if not isinstance(v, (list, dict)))
            qc.append(dict(participant_id=pid, **where, step=step, status="ok", reason=detail))
        row.insert(2, "run", where["run"])
        row.insert(3, "acq", where["acq"])
        row.insert(4, "n_volumes_kept", scan_qc.get("n_volumes_kept", np.nan))
        row.insert(5, "mean_fd_mm", scan_qc.get("mean_fd_mm", np.nan))
        row.insert(6, "voxel_size_mm", scan_qc.get("voxel_size_mm", ""))
        rows.append(row)
        empty = rec.get("QC", {}).get("empty_regions", [])
        qc.append(dict(participant_id=pid, **where, step=parcellate_step, status="ok",
                       reason=f"regions without voxels: {', '.join(empty)}" if empty else ""))
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=SCAN_COLUMNS)
    for c in ("session", "run", "acq"):
        table[c] = table[c].fillna("").astype(str)
    return table, qc


def combine_parcels(scans: pd.DataFrame, rule: str, step: str, session: str = "") -> tuple[pd.DataFrame, list[dict]]:
    """Subject table (participant_id, session, regions) from the scan-level table of
    :func:`gather_parcels` by :func:`rviflow.io.scans.combine_scans`, and a QC row per subject
    (step ``step``) naming the scans that entered and their weights. ``session``: only that
    session's scans (the longitudinal design's baseline; its follow-up scans stay in the
    scan-level table)."""
    from rviflow.io.scans import combine_scans, voxel_size_warning

    if session:
        scans = scans[scans["session"] == session]

    table, record = combine_scans(scans, rule)
    warning = voxel_size_warning(scans)
    if warning:
        print(f"rviflow {step}: warning: {warning}", file=sys.stderr)
    qc = [dict(participant_id=r["participant_id"], session=r["session"], run="", acq="", step=step, status="ok",
               reason=f"{r['n_scans']} scan(s) combined ({r['rule']}): {r['scans']}") for r in record]
    return table, qc


def subject_table(scans: pd.DataFrame) -> pd.DataFrame:
    """One row per subject (subjects x regions, indexed by participant_id).

    The pipeline's group/parcels_<m>.tsv already has one row per subject (runs combined by
    :func:`rviflow.io.scans.combine_scans`, the session chosen by
    :func:`rviflow.io.scans.analysed_sessions`); rows of a user table repeated within a session are
    averaged. A subject with rows in several sessions raises InputError: which session to
    analyse is never chosen silently. Regions without data in any subject (outside every scan's
    field of view: partial-coverage acquisitions analysed on their covered regions, config
    ``atlas.min_regions``) are left out, with a line saying which.
    """
    if scans.empty:
        return scans.set_index("participant_id").drop(columns="session")
    regions = [c for c in scans.columns if c not in ("participant_id", "session")]
    by_ses = scans.groupby(["participant_id", "session"], sort=True)[regions].mean().reset_index()
    several = by_ses["participant_id"].duplicated(keep=False)
    if several.any():
        pid = by_ses.loc[several, "participant_id"].iloc[0]
        found = ", ".join(by_ses.loc[by_ses["participant_id"] == pid, "session"].astype(str))
        raise InputError(f"{pid} has rows for several sessions ({found}) in a regional table: keep the rows of "
                         "the session to analyse (the pipeline's own tables use config `session`)")
    table = by_ses.set_index("participant_id")[regions]
    empty = [r for r in regions if table[r].isna().all()]
    if empty and len(empty) < len(regions):
        print(f"rviflow: {len(empty)} of {len(regions)} regions have no data in any subject (outside every scan's "
              f"coverage) and are left out: {', '.join(empty[:6])}{', ...' if len(empty) > 6 else ''}", file=sys.stderr)
        table = table.drop(columns=empty)
    return table


def cohort_effects(
    values: pd.DataFrame, participants: pd.DataFrame, measure: str, group_column: str, case_label: str,
    control_label: str, covariates: list[str], site_column: str | None, min_per_group: int,
) -> tuple[pd.DataFrame, list[dict]]:
    """Effect sizes for one measure and the cohort-step QC rows (included / excluded, why)."""
    parts = participants[participants["participant_id"].isin(values.index)]
    design = design_matrix(parts, group_column, case_label, control_label, covariates, site_column)
    qc = [dict(participant_id=pid, session="", step=f"cohort_{measure}", status="ok",
               reason="included in effect sizes") for pid in design.index]
    if design.empty:
        raise InputError(f"{measure}: no subject with data is left for the cohort statistics")
    return effect_sizes(values.loc[design.index], design, measure, min_per_group), qc


def collect_parcels(files: dict[str, list[str]], out_table: str, out_qc: str, out_scans: str | None = None,
                    parcellate_step: str = "parcellate", combine_runs: str = "mean",
                    combine_step: str = "combine", session: str = "") -> pd.DataFrame:
    """One measure's cohort table from its per-scan parcel files.

    ``files`` holds ``tsv`` / ``json`` (the parcel tables and their sidecars) and, per earlier
    step, ``<step>_json`` sidecars. Writes the subject table (runs combined by
    ``combine_runs``, :func:`combine_parcels`), the step QC table and, if asked, the scan-level
    table. ``session``: the subject table holds that session only (the longitudinal design's
    baseline; the scan-level table keeps every session). Returns the subject table.
    """
    from rviflow.io.bids import write_tsv

    steps = {k.removesuffix("_json"): list(v) for k, v in files.items() if k not in ("tsv", "json") and len(v)}
    scans, qc = gather_parcels(list(files["tsv"]), list(files["json"]), steps, parcellate_step)
    table, combined = combine_parcels(scans, combine_runs, combine_step, session)
    if out_scans:
        write_tsv(scans, out_scans)
    write_tsv(table, out_table)
    write_tsv(qc_table(qc + combined), out_qc)
    print(f"{len(table)} subjects from {len(scans)} scans; {sum(r['status'] != 'ok' for r in qc)} failed step(s)")
    return table


def qc_table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=QC_COLUMNS)
    df[["session", "run", "acq"]] = df[["session", "run", "acq"]].fillna("")
    return df.sort_values(["participant_id", "session", "step"], kind="stable").reset_index(drop=True)


def run_effect_sizes(
    tables: list[str], measures: list[str], participants_tsv: str, group_column: str, case_label: str,
    control_label: str, covariates: list[str], site_column: str | None, min_per_group: int,
    out_effects: str, out_qc: str,
) -> pd.DataFrame:
    """Read group/parcels_<measure>.tsv tables, write group/effect_sizes.tsv and cohort QC rows.

    Nothing is written unless every measure succeeds (no half-written tables).
    """
    from rviflow.io.bids import read_participants

    required = [group_column, *covariates] + ([site_column] if site_column else [])
    participants = read_participants(participants_tsv, required)
    results, qc = [], []
    for table, measure in zip(tables, measures):
        scans = pd.read_csv(table, sep="\t", dtype={"participant_id": str, "session": str}, na_values="n/a")
        scans["session"] = scans["session"].fillna("")
        eff, rows = cohort_effects(subject_table(scans), participants, measure, group_column, case_label,
                                   control_label, covariates, site_column, min_per_group)
        results.append(eff)
        qc.extend(rows)
    effects = pd.concat(results, ignore_index=True)
    write_tsv(effects, out_effects, float_format="%.6g")
    write_tsv(qc_table(qc), out_qc)
    print(f"effect sizes: {len(effects)} rows for {', '.join(measures)}")
    return effects


def write_qc_table(discovery_rows: list[dict], step_tables: list[str], out: str) -> pd.DataFrame:
    """group/qc.tsv: discovery problems + per-step QC + cohort inclusion, one row per subject and
    step (with session, run, acq). A step table that is a failure marker
    (:mod:`rviflow.pipeline.outcome`) becomes one row (participant_id 'cohort') with its reason."""
    from rviflow.pipeline.outcome import failure_of

    frames = [pd.DataFrame(discovery_rows, columns=QC_COLUMNS)]
    for t in step_tables:
        reason = failure_of(t)
        if reason is not None:
            frames.append(pd.DataFrame([dict(participant_id="cohort", step=Path(t).stem, status="failed",
                                             reason=reason)], columns=QC_COLUMNS))
            continue
        frames.append(pd.read_csv(t, sep="\t", dtype=str, keep_default_na=False))
    # a step shared by several measures (alff / falff, fc's seeds) reaches several step tables
    df = qc_table(pd.concat(frames, ignore_index=True).fillna("").drop_duplicates().to_dict("records"))
    write_tsv(df, out)
    return df
