"""Cohort assembly: per-scan parcel rows -> one subject x region table, the QC table, effect sizes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .bids_io import read_json, write_tsv
from .effects import design_matrix, effect_sizes
from .errors import InputError

QC_COLUMNS = ["participant_id", "session", "step", "status", "reason"]


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
    table : DataFrame (scans x [participant_id, session, regions...])
    qc_rows : list of dict with :data:`QC_COLUMNS`
    """
    rows, qc = [], []
    step_sidecars = step_sidecars or {}
    for i, (tsv, side) in enumerate(zip(parcel_files, parcel_sidecars)):
        rec = _status(side)
        if rec.get("status") != "ok":
            pid = rec.get("participant_id", Path(tsv).name.split("_")[0])
            step = rec.get("step", "parcellate")
            qc.append(dict(participant_id=pid, session="", step=parcellate_step if step == "parcellate" else step,
                           status="failed", reason=rec.get("reason", "unknown")))
            continue
        row = pd.read_csv(tsv, sep="\t", dtype={"participant_id": str, "session": str}, na_values="n/a")
        pid, ses = row.loc[0, "participant_id"], row.loc[0, "session"]
        ses = "" if pd.isna(ses) else str(ses)
        rows.append(row)
        for step, sides in step_sidecars.items():
            srec = _status(sides[i])
            q = srec.get("QC", {})
            detail = ", ".join(f"{k}={v}" for k, v in q.items() if not isinstance(v, (list, dict)))
            qc.append(dict(participant_id=pid, session=ses, step=step, status="ok", reason=detail))
        empty = rec.get("QC", {}).get("empty_regions", [])
        qc.append(dict(participant_id=pid, session=ses, step=parcellate_step, status="ok",
                       reason=f"regions without voxels: {', '.join(empty)}" if empty else ""))
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["participant_id", "session"])
    table["session"] = table["session"].fillna("").astype(str)
    return table, qc


def subject_table(scans: pd.DataFrame) -> pd.DataFrame:
    """One row per subject: runs averaged within a session, the first session (sorted) kept."""
    if scans.empty:
        return scans.set_index("participant_id").drop(columns="session")
    regions = [c for c in scans.columns if c not in ("participant_id", "session")]
    by_ses = scans.groupby(["participant_id", "session"], sort=True)[regions].mean().reset_index()
    first = by_ses.drop_duplicates("participant_id", keep="first")
    return first.set_index("participant_id")[regions]


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


def qc_table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=QC_COLUMNS)
    return df.sort_values(["participant_id", "session", "step"], kind="stable").reset_index(drop=True)


def run_effect_sizes(
    tables: list[str], measures: list[str], participants_tsv: str, group_column: str, case_label: str,
    control_label: str, covariates: list[str], site_column: str | None, min_per_group: int,
    out_effects: str, out_qc: str, log: str | None = None,
) -> pd.DataFrame:
    """Read group/parcels_<measure>.tsv tables, write group/effect_sizes.tsv and cohort QC rows.

    Nothing is written unless every measure succeeds (no half-written tables).
    """
    from .bids_io import read_participants

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
    if log:
        Path(log).write_text(f"effect sizes: {len(effects)} rows for {', '.join(measures)}\n")
    return effects


def write_qc_table(discovery_rows: list[dict], step_tables: list[str], out: str) -> pd.DataFrame:
    """group/qc.tsv: discovery problems + per-step QC + cohort inclusion, one row per subject and step."""
    frames = [pd.DataFrame(discovery_rows, columns=QC_COLUMNS)]
    for t in step_tables:
        frames.append(pd.read_csv(t, sep="\t", dtype=str, keep_default_na=False))
    df = qc_table(pd.concat(frames, ignore_index=True).fillna("").to_dict("records"))
    write_tsv(df, out)
    return df
