"""File-level steps of the treatment and biomarker designs (called by the cohort scripts):
read the regional tables, participants.tsv and the sessions table, run
:mod:`rviflow.cohort.longitudinal` / :mod:`rviflow.cohort.associations`, write group/ tables.

Regional tables per session: the pipeline's ``group/parcels_<m>_scans.tsv`` (one row per scan:
runs / acquisitions of a session combined by ``combine_runs``, as for the baseline table) or a
user table (``cohort.tables``) with a ``session`` column.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from rviflow.cohort.associations import associations, nuisance_design
from rviflow.errors import InputError
from rviflow.cohort.longitudinal import (CHANGE_ASSOCIATION_COLUMNS, RESPONSE_COLUMNS, change_associations, paired_change,
                           predict_response, response)
from rviflow.io.regional import write_all
from rviflow.io.sessions import check_sessions, read_sessions, wide_scores


def session_values(path: str | Path, session: str, combine_runs: str = "mean") -> pd.DataFrame:
    """Subjects x regions of one session from a per-scan parcel table (runs combined) or a
    regional table with a session column (rows of a session averaged)."""
    from rviflow.io.scans import SCAN_COLUMNS, combine_scans

    df = pd.read_csv(path, sep="\t" if not str(path).endswith(".csv") else ",",
                     dtype={"participant_id": str, "session": str}, na_values="n/a")
    if "session" not in df.columns:
        raise InputError(f"no session column: the longitudinal design needs rows per session", path=str(path))
    df["session"] = df["session"].fillna("").astype(str).str.removeprefix("ses-")
    df = df[df["session"] == session]
    if "run" in df.columns:  # the pipeline's per-scan table
        table, _ = combine_scans(df.reset_index(drop=True), combine_runs)
        return table.set_index("participant_id").drop(columns="session")
    regions = [c for c in df.columns if c not in ("participant_id", "session") and c not in SCAN_COLUMNS]
    return df.groupby("participant_id", sort=True)[regions].mean()


def _participants(path: str, spec) -> pd.DataFrame:
    from rviflow.io.bids import read_participants

    required = [spec["group_column"], *spec["covariates"]] + ([spec["site_column"]] if spec["site_column"] else [])
    return read_participants(path, required)


def _scores(design: dict, bids_dir: str, ids, available: dict[str, set], variables: list[str]):
    long = read_sessions(bids_dir, ids, design["sessions_table"])
    # its problems were reported and put in group/qc.tsv when the workflow was planned
    table, _ = check_sessions(long, available, design["baseline"], design["followup"], variables)
    return wide_scores(table, design["baseline"], design["followup"], variables)


def _available(bases, follows, design: dict) -> dict[str, set]:
    out: dict[str, set] = {}
    for tables, ses in ((bases, design["baseline"]), (follows, design["followup"])):
        for t in tables:
            for p in t.index:
                out.setdefault(p, set()).add(ses)
    return out


def run_change(tables: list[str], measures: list[str], participants_tsv: str, spec: dict, design: dict,
               bids_dir: str, combine_runs: str, out_change: str, out_assoc: str) -> None:
    """group/change.tsv and group/change_associations.tsv (written together, or neither).

    ``spec``: group_column, case, control, covariates, site_column (config).
    """
    participants = _participants(participants_tsv, spec)
    groups = {"case": spec["case"], "control": spec["control"]}
    change, assoc = [], []
    for table, measure in zip(tables, measures):
        base = session_values(table, design["baseline"], combine_runs)
        follow = session_values(table, design["followup"], combine_runs)
        change.append(paired_change(base, follow, participants, measure, spec["group_column"], groups,
                                    spec["covariates"], spec["site_column"] or None))
        available = _available([base], [follow], design)
        b, f = _scores(design, bids_dir, list(participants["participant_id"]), available, design["symptoms"])
        delta = (f - b.reindex(f.index)).dropna(how="all")
        assoc.append(change_associations(base, follow, delta, participants, measure, spec["group_column"],
                                         [groups[g] for g in design["groups"]], spec["covariates"],
                                         spec["site_column"] or None))
    assoc = [a for a in assoc if len(a)]
    write_all({out_change: pd.concat(change, ignore_index=True),
               out_assoc: pd.concat(assoc, ignore_index=True) if assoc
               else pd.DataFrame(columns=CHANGE_ASSOCIATION_COLUMNS)})


def run_response_prediction(tables: list[str], measures: list[str], participants_tsv: str, spec: dict, design: dict,
                            bids_dir: str, combine_runs: str, out: str) -> pd.DataFrame:
    """group/response_prediction.tsv: each measure's baseline regions (and all measures combined)
    predicting the response of design.response.group, per model."""
    participants = _participants(participants_tsv, spec)
    pred_cfg, resp_cfg = design["prediction"], design["response"]
    symptom = resp_cfg["symptom"] or design["symptoms"][0]
    role = resp_cfg["group"]
    label = participants.set_index("participant_id")[spec["group_column"]].astype(str)
    base = {m: session_values(t, design["baseline"], combine_runs) for t, m in zip(tables, measures)}
    follow = {m: session_values(t, design["followup"], combine_runs) for t, m in zip(tables, measures)}
    available = _available(base.values(), follow.values(), design)
    b, f = _scores(design, bids_dir, list(participants["participant_id"]), available, [symptom])
    target = response(b[symptom], f[symptom], resp_cfg["kind"])
    target = target[[label.get(p) == spec[role] for p in target.index]]
    covars = sites = None
    if spec["site_column"]:
        sites = participants.set_index("participant_id")[spec["site_column"]]
    if pred_cfg["covariates"]:
        covars = nuisance_design(participants, spec["covariates"], spec["site_column"] or None).drop(columns="intercept")
    sets = {m: [m] for m in measures}
    if len(measures) > 1:
        sets["combined"] = list(measures)
    rows = []
    for name, ms in sets.items():
        X = pd.concat([base[m].add_prefix(f"{m}:") for m in ms], axis=1, join="inner")
        for model in pred_cfg["models"]:
            res = predict_response(X, target, covars, sites, model, pred_cfg["outer_folds"], pred_cfg["inner_folds"],
                                   pred_cfg["n_perm"], design["seed"])
            rows.append(dict(features=name, model=model, target=symptom, response=resp_cfg["kind"], **res))
    table = pd.DataFrame(rows, columns=RESPONSE_COLUMNS)
    write_all({out: table})
    return table


def run_associations(tables: list[str], measures: list[str], participants_tsv: str, spec: dict, items: list[dict],
                     design: dict, bids_dir: str, out: str, participants_raw: str = "") -> pd.DataFrame:
    """group/associations.tsv for every item of config ``associations`` (variables from
    participants.tsv -- ``participants_raw``, the file given, when the usable-rows table
    ``participants_tsv`` lacks them -- else from the sessions table at the item's session)."""
    participants = _participants(participants_tsv, spec)
    if participants_raw:
        raw = pd.read_csv(participants_raw, sep="\t", dtype=str, keep_default_na=False)
        extra = [c for c in raw.columns if c not in participants.columns]
        participants = participants.merge(raw[["participant_id", *extra]].replace({"n/a": None, "": None}),
                                          on="participant_id", how="left")
    values = {}
    for table, measure in zip(tables, measures):
        from rviflow.cohort.tables import subject_table

        df = pd.read_csv(table, sep="\t", dtype={"participant_id": str, "session": str}, na_values="n/a")
        df["session"] = df["session"].fillna("") if "session" in df else ""
        values[measure] = subject_table(df)
    roles = {"case": [spec["case"]], "control": [spec["control"]], "all": [spec["case"], spec["control"]]}
    out_rows = []
    for item in items:
        variables = list(item["variables"])
        parts = participants.copy()
        from_sessions = [v for v in variables if v not in parts.columns]
        if from_sessions:
            ses = item["session"] or design["baseline"]
            long = read_sessions(bids_dir, list(parts["participant_id"]), design["sessions_table"])
            if long.empty or any(v not in long.columns for v in from_sessions):
                missing = [v for v in from_sessions if long.empty or v not in long.columns]
                raise InputError(f"associations: {', '.join(missing)} is in neither participants.tsv nor the sessions "
                                 "table (design.sessions_table or BIDS sessions.tsv)")
            avail = {p: {ses} for p in parts["participant_id"]}
            table, _ = check_sessions(long, avail, ses, ses, from_sessions)
            parts = parts.merge(table[table["session"] == ses].drop(columns="session"), on="participant_id", how="left")
        for v in variables:
            num = pd.to_numeric(parts[v], errors="coerce")
            for pid in parts.loc[num.isna() & parts[v].notna(), "participant_id"]:
                print(f"rviflow: {pid}: participants.tsv {v} = {parts.set_index('participant_id').loc[pid, v]!r} is "
                      f"not a number (left out of the {v} associations)", file=sys.stderr)
            parts[v] = num
        ms = item["measures"] or measures
        unknown = [m for m in ms if m not in values]
        if unknown:
            raise InputError(f"associations.measures: {', '.join(unknown)} not produced by this run "
                             f"(measures: {', '.join(measures)})")
        covs = spec["covariates"] if item["covariates"] is None else list(item["covariates"])
        out_rows.append(associations({m: values[m] for m in ms}, parts, variables,
                                     {g if g == "all" else spec[g]: roles[g] for g in item["groups"]},
                                     spec["group_column"], covs, spec["site_column"] or None))
    table = pd.concat(out_rows, ignore_index=True) if out_rows else pd.DataFrame()
    write_all({out: table})
    return table


def available_in_tables(paths: list[str]) -> tuple[dict[str, set], dict[tuple[str, str], str]]:
    """{participant_id: session labels} with rows in regional tables (tables-only runs), and
    {(participant_id, session): the file}; tables without a session column are skipped."""
    out: dict[str, set] = {}
    files: dict[tuple[str, str], str] = {}
    for path in paths:
        sep = "," if str(path).endswith(".csv") else "\t"
        cols = pd.read_csv(path, sep=sep, nrows=0).columns
        if "session" not in cols:
            continue
        df = pd.read_csv(path, sep=sep, usecols=["participant_id", "session"], dtype=str, keep_default_na=False)
        for p, s in zip(df["participant_id"], df["session"]):
            p, s = p if p.startswith("sub-") else f"sub-{p}", s.removeprefix("ses-")
            out.setdefault(p, set()).add(s)
            files.setdefault((p, s), str(path))
    return out, files


def design_map(name: str, path: str) -> pd.Series:
    """A design's regional map by name, for the transcriptomics and the report (region -> value):
    ``change_<measure>`` = d_z of the case group's paired change (group/change.tsv: the first
    group that is not a difference), ``assoc_<measure>_<variable>`` = partial r of the first
    group analysed for that variable (group/associations.tsv)."""
    df = pd.read_csv(path, sep="\t", na_values="n/a", dtype={"group": str})
    if name.startswith("change_"):
        rows = df[(df["measure"] == name[7:]) & ~df["group"].str.contains("-", regex=False)]
        column = "d_z"
    else:
        measure, _, variable = name[6:].partition("_")
        rows = df[(df["measure"] == measure) & (df["variable"] == variable)]
        column = "r_partial"
    if rows.empty:
        raise InputError(f"transcriptomics.maps: no rows for {name!r}", path=path)
    rows = rows[rows["group"] == rows["group"].iloc[0]]
    return pd.Series(rows[column].to_numpy(float), index=rows["region"].astype(str), name=name)
