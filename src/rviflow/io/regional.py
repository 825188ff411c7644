"""Regional tables of any measure: the pipeline's group/parcels_<measure>.tsv or a user's own.

A regional table has a ``participant_id`` column (``sub-`` prefix added when missing), an
optional ``session`` column and one numeric column per region. Consortia share such tables
(ENIGMA sites, UK Biobank IDPs), so the cohort statistics run on them alone.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rviflow.cohort.tables import subject_table
from rviflow.errors import InputError


def read_regional_table(path: str | Path, measure: str) -> pd.DataFrame:
    """A regional table as scans x [participant_id, session, regions...] (session "" if absent).

    Raises InputError naming the file for a missing participant_id column, a non-numeric region
    column or a duplicated participant/session row.
    """
    path = Path(path)
    sep = "," if path.suffix == ".csv" else "\t"
    try:
        df = pd.read_csv(path, sep=sep, dtype={"participant_id": str, "session": str}, na_values="n/a")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{measure} table unreadable: {exc}", path=str(path)) from None
    if "participant_id" not in df.columns:
        raise InputError(f"{measure} table has no participant_id column", path=str(path))
    df["participant_id"] = [p if p.startswith("sub-") else f"sub-{p}" for p in df["participant_id"].astype(str)]
    if "session" not in df.columns:
        df.insert(1, "session", "")
    df["session"] = df["session"].fillna("").astype(str)
    regions = [c for c in df.columns if c not in ("participant_id", "session")]
    if not regions:
        raise InputError(f"{measure} table has no region columns", path=str(path))
    check_numeric(df, regions, measure, path)
    dup = df.duplicated(["participant_id", "session"])
    if dup.any():
        raise InputError(f"{df['participant_id'][dup].iloc[0]} appears twice in the {measure} table", path=str(path))
    return df[["participant_id", "session", *regions]]


def check_numeric(df: pd.DataFrame, columns: list[str], measure: str, path: str | Path,
                  id_column: str = "participant_id") -> None:
    """InputError naming the file, subject, region and value of the first non-numeric entry
    (missing values, e.g. n/a or empty, are allowed)."""
    for col in columns:
        if not pd.api.types.is_numeric_dtype(df[col]):
            bad = df[pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()]
            if len(bad):
                raise InputError(f"{bad[id_column].iloc[0]}: {measure} region {col!r} has a non-numeric value "
                                 f"{bad[col].iloc[0]!r}", path=str(path))


def match_participants_table(table: pd.DataFrame, participant_ids: list[str], step: str,
                             source: str) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of a regional table whose participant is in participants.tsv, and QC rows.

    QC (step ``step``): ok for each kept row; failed for a row whose participant has no
    participants.tsv row (left out, as imaging data without a row are) and for a participant
    without a row in the table. No participant in common raises InputError (IDs that differ
    in form, e.g. 1001 vs sub-1001, are the likely cause).
    """
    known = set(participant_ids)
    keep = table["participant_id"].isin(known)
    if not keep.any():
        raise InputError(f"none of the {len(table)} participant_id values of {source} is in participants.tsv "
                         f"(e.g. {table['participant_id'].iloc[0]!r}; participants.tsv has e.g. "
                         f"{sorted(known)[0]!r})")
    qc = [dict(participant_id=p, session=s, step=step, status="ok", reason=f"from {source}")
          for p, s in zip(table.loc[keep, "participant_id"], table.loc[keep, "session"])]
    qc += [dict(participant_id=p, session=s, step=step, status="failed",
                reason=f"has data in {source} but no row in participants.tsv (left out)")
           for p, s in zip(table.loc[~keep, "participant_id"], table.loc[~keep, "session"])]
    qc += [dict(participant_id=p, session="", step=step, status="failed", reason=f"no row in {source}")
           for p in sorted(known - set(table["participant_id"]))]
    return table[keep].reset_index(drop=True), qc


def load_measures(tables: dict[str, str | Path]) -> dict[str, pd.DataFrame]:
    """{measure: subjects x regions} from regional tables (runs / sessions as :func:`subject_table`)."""
    return {m: subject_table(read_regional_table(p, m)) for m, p in tables.items()}


def write_tsv_atomic(df: pd.DataFrame, path: str | Path, **kw) -> None:
    """A cohort table: :func:`rviflow.io.bids.write_tsv` (atomic, 'n/a') with 6 significant digits."""
    from rviflow.io.bids import write_tsv

    write_tsv(df, path, **{"float_format": "%.6g", **kw})


def write_all(frames: dict[str | Path, pd.DataFrame]) -> None:
    """Write several tables only after all were computed (each atomically)."""
    for path, df in frames.items():
        write_tsv_atomic(df, path)
