"""Per-session variables (symptom scores at each visit) for the longitudinal design.

They come from BIDS ``sub-<label>/sub-<label>_sessions.tsv`` (``session_id`` = ``ses-<label>``,
then any columns) or from one long table (config ``design.sessions_table``: participant_id,
session, ...). :func:`read_sessions` reads them into one long table; :func:`check_sessions`
matches its rows with the sessions that have data and turns every problem into one line naming
subject, session and file (a QC row): a row for a session without data, data without a row, a
score that is not a number. Each problem leaves out only the analysis it affects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rviflow.errors import InputError

SOURCE = "_source"  # column of the long table naming the file a row came from


def _label(value: str) -> str:
    return str(value).strip().removeprefix("ses-")


def read_sessions(bids_dir: str | Path, participant_ids, table: str | Path = "") -> pd.DataFrame:
    """Long table participant_id, session (label without ``ses-``), the files' columns (text) and
    :data:`SOURCE` (the file), from ``table`` if given, else every subject's BIDS sessions.tsv.

    Raises InputError naming the file when a table lacks its id columns or repeats a row.
    """
    frames = []
    if table:
        path = Path(table)
        sep = "," if path.suffix == ".csv" else "\t"
        try:
            df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"sessions table unreadable: {exc}", path=str(path)) from None
        ses_col = "session" if "session" in df.columns else "session_id"
        if "participant_id" not in df.columns or ses_col not in df.columns:
            raise InputError("sessions table needs participant_id and session columns", path=str(path))
        df = df.rename(columns={ses_col: "session"})
        df["participant_id"] = [p if p.startswith("sub-") else f"sub-{p}" for p in df["participant_id"].str.strip()]
        df[SOURCE] = str(path)
        frames.append(df)
    elif bids_dir:
        for pid in participant_ids:
            path = Path(bids_dir) / pid / f"{pid}_sessions.tsv"
            if not path.is_file():
                continue
            df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
            if "session_id" not in df.columns:
                raise InputError(f"{pid}: sessions.tsv has no session_id column", path=str(path))
            df = df.rename(columns={"session_id": "session"})
            df.insert(0, "participant_id", pid)
            df[SOURCE] = str(path)
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["participant_id", "session", SOURCE])
    out = pd.concat(frames, ignore_index=True).fillna("")
    out["session"] = out["session"].map(_label)
    dup = out.duplicated(["participant_id", "session"])
    if dup.any():
        row = out[dup].iloc[0]
        raise InputError(f"{row['participant_id']} ses-{row['session']} has two rows", path=row[SOURCE])
    return out


def check_sessions(long: pd.DataFrame, available: dict[str, set], baseline: str, followup: str,
                   variables: list[str]) -> tuple[pd.DataFrame, list[dict]]:
    """Numeric per-session variables of the analysed sessions, and QC rows for every problem.

    Parameters
    ----------
    long : from :func:`read_sessions`
    available : {participant_id: session labels with data} (baseline / follow-up of the design)
    baseline, followup : the design's session labels
    variables : the per-session variables the analyses use (design.symptoms)

    Returns
    -------
    table : participant_id, session, variables (float; NaN = missing or not a number), rows of
        sessions with data only
    qc : dict rows (participant_id, session, step 'sessions', status 'failed', reason) naming the
        file: a row without data, data without a row, a non-number, a variable missing from the file
    """
    qc = []

    def flag(pid, ses, reason):
        qc.append(dict(participant_id=pid, session=ses, run="", acq="", step="sessions", status="failed",
                       reason=reason))

    rows = long[long["session"].isin([baseline, followup])] if len(long) else long
    seen = set()
    for _, row in rows.iterrows():
        pid, ses, src = row["participant_id"], row["session"], row[SOURCE]
        seen.add((pid, ses))
        if ses not in available.get(pid, set()):
            flag(pid, ses, f"{src}: a row for ses-{ses} but no ses-{ses} data (row not used)")
    files = dict(zip(long["participant_id"], long[SOURCE])) if len(long) else {}
    for pid, sessions in sorted(available.items()):
        for ses in sorted(sessions):
            if (pid, ses) not in seen:
                where = files.get(pid, f"{pid}/{pid}_sessions.tsv")
                flag(pid, ses, f"{where}: no row for ses-{ses} (its scores are missing: left out of the "
                               "symptom-change and response analyses)")
    keep = [(p, s) in {(p, s) for p, ss in available.items() for s in ss}
            for p, s in zip(rows["participant_id"], rows["session"])] if len(rows) else []
    rows = rows[np.asarray(keep, bool)] if len(rows) else rows
    table = rows[["participant_id", "session"]].copy() if len(rows) else pd.DataFrame(columns=["participant_id", "session"])
    for var in variables:
        if len(rows) and var not in rows.columns:
            flag("cohort", "", f"{rows[SOURCE].iloc[0]}: no column {var!r} (design.symptoms): not analysed")
            table[var] = np.nan
            continue
        raw = rows[var].astype(str).str.strip() if len(rows) else pd.Series(dtype=str)
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & ~raw.isin(["", "n/a", "NA", "nan"])
        for i in raw.index[bad]:
            flag(rows.loc[i, "participant_id"], rows.loc[i, "session"],
                 f"{rows.loc[i, SOURCE]}: {var} = {raw.loc[i]!r} is not a number (left out of the {var} analyses)")
        table[var] = num.to_numpy(float) if len(rows) else np.nan
    return table.reset_index(drop=True), qc


def wide_scores(table: pd.DataFrame, baseline: str, followup: str, variables: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(baseline scores, follow-up scores): subjects x variables, indexed by participant_id."""
    def one(ses):
        return table[table["session"] == ses].set_index("participant_id")[variables].astype(float)

    return one(baseline), one(followup)
