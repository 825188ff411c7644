"""Cortical thickness per Desikan-Killiany region, from FreeSurfer or ENIGMA tables.

Two sources give the same subject x region table (columns named as in
``resources/atlas/desikan_killiany_dseg.tsv``: ``L_bankssts`` ... ``R_insula``, mm):

- FreeSurfer ``<subjects_dir>/<subject>/stats/{lh,rh}.aparc.stats`` (the ``ThickAvg`` column of
  the table after ``# ColHeaders``), e.g. fMRIPrep's ``sourcedata/freesurfer``;
- an ENIGMA-format table (``CorticalMeasuresENIGMA_ThickAvg.csv``: ``SubjID``,
  ``L_bankssts_thickavg`` ..., plus hemisphere summaries that are ignored).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from rviflow.errors import InputError

HEMIS = {"lh": "L", "rh": "R"}
_ENIGMA_RE = re.compile(r"^([LR])_([a-z]+)_thickavg$", re.IGNORECASE)


def read_aparc_stats(path: str | Path, column: str = "ThickAvg") -> pd.Series:
    """One ``?h.aparc.stats`` file as a Series (DK structure name -> ``column``, e.g. mm).

    Raises InputError naming the file if it has no ``# ColHeaders`` line, lacks ``column`` or
    has rows with the wrong number of fields.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read FreeSurfer stats: {exc.strerror}", path=str(path)) from None
    header = None
    rows = []
    for ln in lines:
        if ln.startswith("# ColHeaders"):
            header = ln.split()[2:]
        elif ln.strip() and not ln.startswith("#"):
            rows.append(ln.split())
    if header is None:
        raise InputError("no '# ColHeaders' line: not a FreeSurfer aparc.stats table", path=str(path))
    if column not in header or "StructName" not in header:
        raise InputError(f"no {column!r} / 'StructName' column (columns: {', '.join(header)})", path=str(path))
    bad = [r for r in rows if len(r) != len(header)]
    if bad:
        raise InputError(f"row {' '.join(bad[0])!r} has {len(bad[0])} fields, the header {len(header)}",
                         path=str(path))
    df = pd.DataFrame(rows, columns=header)
    return pd.Series(pd.to_numeric(df[column], errors="coerce").to_numpy(float), index=df["StructName"], name=column)


def subject_thickness(stats_dir: str | Path, regions: list[str]) -> pd.Series:
    """Thickness of one subject's ``stats/`` folder, indexed by ``regions`` (L_/R_ names).

    A region of ``regions`` absent from the stats files is NaN (e.g. subcortical regions).
    """
    stats_dir = Path(stats_dir)
    values = {}
    for hemi, h in HEMIS.items():
        f = stats_dir / f"{hemi}.aparc.stats"
        if not f.exists():
            raise InputError(f"{hemi}.aparc.stats missing", path=str(f))
        for name, v in read_aparc_stats(f).items():
            values[f"{h}_{name}"] = v
    return pd.Series([values.get(r, np.nan) for r in regions], index=regions, dtype=float)


def freesurfer_table(
    subjects_dir: str | Path, participant_ids: list[str], regions: list[str]
) -> tuple[pd.DataFrame, list[dict]]:
    """Cortical thickness of every participant with FreeSurfer stats under ``subjects_dir``.

    Parameters
    ----------
    subjects_dir : FreeSurfer SUBJECTS_DIR (subjects named like ``participant_id``, e.g. sub-01)
    participant_ids : subjects to look for
    regions : atlas region names; only those present in aparc (68 cortical) are kept

    Returns
    -------
    table : DataFrame (subjects x [participant_id, session, regions...]); session is ""
    qc : QC rows (step 'thickness') for every participant: ok, or failed with the reason
    """
    rows, qc = [], []
    for pid in participant_ids:
        try:
            s = subject_thickness(Path(subjects_dir) / pid / "stats", regions)
        except InputError as exc:
            qc.append(dict(participant_id=pid, session="", step="thickness", status="failed", reason=str(exc)))
            continue
        rows.append(pd.concat([pd.Series({"participant_id": pid, "session": ""}), s]))
        qc.append(dict(participant_id=pid, session="", step="thickness", status="ok", reason=""))
    table = pd.DataFrame(rows)
    if table.empty:
        raise InputError(f"no subject has FreeSurfer lh/rh.aparc.stats under {subjects_dir}")
    return _cortical_only(table), qc


def enigma_table(path: str | Path, regions: list[str]) -> pd.DataFrame:
    """Thickness from an ENIGMA ``CorticalMeasuresENIGMA_ThickAvg.csv`` (SubjID, L_x_thickavg ...).

    Subject IDs without the BIDS ``sub-`` prefix get it; a non-numeric value (other than a
    missing one, e.g. NA) raises InputError naming subject and region. Returns the table
    (subjects x [participant_id, session, regions...]).
    """
    from rviflow.io.regional import check_numeric

    path = Path(path)
    sep = "\t" if path.suffix in (".tsv", ".txt") else ","
    df = pd.read_csv(path, sep=sep, dtype={"SubjID": str})
    if "SubjID" not in df.columns:
        raise InputError("no 'SubjID' column: not an ENIGMA cortical measures table", path=str(path))
    cols = {c: f"{m.group(1).upper()}_{m.group(2).lower()}" for c in df.columns if (m := _ENIGMA_RE.match(c))}
    if not cols:
        raise InputError("no L_<region>_thickavg columns: not an ENIGMA thickness table", path=str(path))
    unknown = sorted(set(cols.values()) - set(regions))
    if unknown:
        raise InputError(f"regions not in the atlas: {', '.join(unknown[:5])}", path=str(path))
    check_numeric(df, list(cols), "thickness", path, id_column="SubjID")
    out = df[list(cols)].rename(columns=cols).apply(pd.to_numeric)
    pids = [s if s.startswith("sub-") else f"sub-{s}" for s in df["SubjID"].astype(str)]
    dup = pd.Series(pids)[pd.Series(pids).duplicated()]
    if len(dup):
        raise InputError(f"{dup.iloc[0]} appears twice in the ENIGMA thickness table", path=str(path))
    out.insert(0, "session", "")
    out.insert(0, "participant_id", pids)
    return out


def _cortical_only(table: pd.DataFrame) -> pd.DataFrame:
    regions = [c for c in table.columns if c not in ("participant_id", "session")]
    keep = [r for r in regions if table[r].notna().any()]
    return table[["participant_id", "session", *keep]].reset_index(drop=True)


def format_aparc_stats(hemi: str, subject: str, thickness_mm: dict[str, float], rng: np.random.Generator) -> str:
    """Text of a FreeSurfer 7 ``?h.aparc.stats`` file with the given ThickAvg per structure.

    The other columns (vertices, area, volume, curvature) are plausible random numbers; used by
    the synthetic cohort (:mod:`rviflow.synth.cohort`).
    """
    head = [
        "# Table of FreeSurfer cortical parcellation anatomical statistics ",
        "# ",
        "# CreationTime 2026/01/01-00:00:00-GMT",
        "# generating_program mris_anatomical_stats",
        "# cvs_version 7.4.1",
        f"# cmdline mris_anatomical_stats -th3 -mgz -cortex ../label/{hemi}.cortex.label -f "
        f"../stats/{hemi}.aparc.stats -b -a ../label/{hemi}.aparc.annot -c ../label/aparc.annot.ctab "
        f"{subject} {hemi} white ",
        "# sysname  Linux",
        "# hostname rviflow-synth",
        "# machine  x86_64",
        "# user     rviflow",
        "# ",
        f"# SUBJECTS_DIR /data/sourcedata/freesurfer",
        "# anatomy_type surface",
        f"# subjectname {subject}",
        f"# hemi {hemi}",
        "# AnnotationFile ../label/{hemi}.aparc.annot".replace("{hemi}", hemi),
        "# AnnotationFileTimeStamp 2026/01/01 00:00:00",
        "# Measure Cortex, NumVert, Number of Vertices, 131241, unitless",
        "# Measure Cortex, WhiteSurfArea, White Surface Total Area, 89212.3, mm^2",
        f"# Measure Cortex, MeanThickness, Mean Thickness, {np.mean(list(thickness_mm.values())):.5f}, mm",
        "# ColorTable ../label/aparc.annot.ctab",
        "# NTableCols 10",
        "# TableCol  1 ColHeader StructName",
        "# TableCol  5 ColHeader ThickAvg",
        "# TableCol  5 FieldName Average Thickness",
        "# TableCol  5 Units     mm",
        "# ColHeaders StructName NumVert SurfArea GrayVol ThickAvg ThickStd MeanCurv GausCurv FoldInd CurvInd",
    ]
    body = []
    for name, th in thickness_mm.items():
        nv = int(rng.integers(800, 9000))
        area = int(nv * 0.7)
        body.append(f"{name:<40} {nv:6d} {area:6d} {int(area * th):6d} {th:6.3f} {rng.uniform(0.4, 0.8):5.3f} "
                    f"{rng.uniform(0.08, 0.15):9.3f} {rng.uniform(0.01, 0.04):9.3f} {int(rng.integers(5, 200)):8d} "
                    f"{rng.uniform(0.5, 20):6.1f}")
    return "\n".join(head + body) + "\n"
