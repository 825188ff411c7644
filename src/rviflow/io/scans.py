"""Which scans of a subject are analysed: the session, and how its runs / acquisitions combine.

A cross-sectional analysis needs one value per subject and region. A subject may have several
sessions (``ses-``), several runs (``run-``) and several acquisitions (``acq-``) of the task.

- Session: :func:`analysed_sessions` is the one place that decides which session of each
  subject is analysed (``session`` in the config, else the earliest by ``acq_time`` in BIDS
  ``sub-<label>_sessions.tsv``, else the only one). In the longitudinal design
  (config ``design: {type: longitudinal}``) :func:`longitudinal_sessions` keeps the baseline and
  the follow-up session of each subject instead (:func:`analysed_scans` calls the one the design
  asks for).
- Runs and acquisitions of that session: :func:`combine_scans` combines their scan-level
  parcel values by a documented rule (``combine_runs``): ``mean`` (default; mean of the usable
  scans weighted by the volumes each kept after censoring), ``first`` (lowest run / first
  acquisition), ``lowest_motion`` (smallest mean framewise displacement).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rviflow.errors import InputError

COMBINE_RULES = ("mean", "first", "lowest_motion")
#: scan-level columns of a per-scan parcel table besides the regions
SCAN_COLUMNS = ["participant_id", "session", "run", "acq", "n_volumes_kept", "mean_fd_mm", "voxel_size_mm"]


def session_times(bids_dir: str | Path, participant_ids) -> dict[str, dict[str, str]]:
    """{participant_id: {session label: acq_time}} from ``sub-<label>/sub-<label>_sessions.tsv``
    (BIDS), for the subjects whose file has an ``acq_time`` column; empty values are left out."""
    out = {}
    if not bids_dir:
        return out
    for pid in participant_ids:
        path = Path(bids_dir) / pid / f"{pid}_sessions.tsv"
        if not path.is_file():
            continue
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        if "session_id" not in df.columns or "acq_time" not in df.columns:
            continue
        times = {s.removeprefix("ses-"): t.strip() for s, t in zip(df["session_id"], df["acq_time"])
                 if t.strip() not in ("", "n/a")}
        if times:
            out[pid] = times
    return out


def analysed_sessions(available: dict[str, list[str]], session: str = "",
                      acq_times: dict[str, dict[str, str]] | None = None) -> tuple[dict[str, str], list[dict]]:
    """The session analysed for each subject (cross-sectional analysis).

    Parameters
    ----------
    available : {participant_id: [session labels with data]}; '' = no ses- entity.
    session : str
        Config ``session``: the label to analyse in every subject ('' = choose automatically).
    acq_times : {participant_id: {session: acq_time}} from :func:`session_times`.

    Returns
    -------
    chosen : {participant_id: session label} ('' for subjects without sessions)
    excluded : QC rows (participant_id, session, step='session', status='failed', reason) of
        subjects without the configured session.

    Raises InputError (one line: the sessions found and the key to set) when the cohort has
    more than one session, ``session`` is empty and sessions.tsv does not date every subject's
    sessions.
    """
    acq_times = acq_times or {}
    labels = sorted({s for sessions in available.values() for s in sessions})
    chosen, excluded = {}, []
    if session:
        for pid, sessions in sorted(available.items()):
            if session in sessions:
                chosen[pid] = session
            else:
                has = ", ".join(f"ses-{s}" for s in sorted(sessions) if s) or "no ses- folder"
                excluded.append(dict(participant_id=pid, session="", step="session", status="failed",
                                     reason=f"no ses-{session} (config session) data; has {has}"))
        return chosen, excluded
    undated = []
    for pid, sessions in sorted(available.items()):
        sessions = sorted(set(sessions))
        if len(labels) <= 1:
            chosen[pid] = sessions[0]
            continue
        times = acq_times.get(pid, {})
        if all(s in times for s in sessions):
            chosen[pid] = min(sessions, key=lambda s: (pd.Timestamp(times[s]), s))
        else:
            undated.append(pid)
    if undated:
        raise InputError(
            f"several sessions found ({', '.join(f'ses-{s}' for s in labels if s)}) and no acq_time in "
            f"{undated[0]}/{undated[0]}_sessions.tsv: set `session` in the config to the one to analyse "
            f"(e.g. session: {labels[-1] if labels[-1] else labels[0]})")
    return chosen, excluded


def longitudinal_sessions(available: dict[str, list[str]], baseline: str, followup: str,
                          files: dict[tuple[str, str], str] | None = None) -> tuple[dict[str, list[str]], list[dict]]:
    """The sessions analysed per subject in the longitudinal design: baseline and follow-up.

    Parameters
    ----------
    available : {participant_id: [session labels with data]}
    baseline, followup : config ``design.baseline`` / ``design.followup``
    files : {(participant_id, session): a file of that session} named in the QC lines

    Returns
    -------
    chosen : {participant_id: [baseline] or [baseline, followup]}
    rows : QC rows (step 'session'): ok for both sessions or baseline only (baseline analyses
        only); failed for a follow-up without baseline (subject left out) and for every session
        that is neither (not analysed), each naming subject, session and file.
    """
    files = files or {}
    chosen, rows = {}, []

    def row(pid, ses, status, reason):
        rows.append(dict(participant_id=pid, session=ses, step="session", status=status, reason=reason))

    for pid, sessions in sorted(available.items()):
        sessions = set(sessions)
        for other in sorted(sessions - {baseline, followup}):
            what = f"ses-{other}" if other else "data without a ses- folder"
            row(pid, other, "failed", f"{files.get((pid, other), pid)}: {what} is neither the baseline (ses-{baseline}) "
                                      f"nor the follow-up (ses-{followup}) session of config design: not analysed")
        if baseline in sessions:
            chosen[pid] = [baseline] + ([followup] if followup in sessions else [])
            if followup in sessions:
                row(pid, baseline, "ok", f"ses-{baseline} (baseline) and ses-{followup} (follow-up) analysed")
            else:
                row(pid, baseline, "ok", f"baseline only: no ses-{followup} (follow-up) data; in the baseline "
                                         "analyses, not in the change analyses")
        elif followup in sessions:
            row(pid, followup, "failed", f"{files.get((pid, followup), pid)}: ses-{followup} (follow-up) without "
                                         f"ses-{baseline} (baseline): left out")
    return chosen, rows


def voxel_size_warning(scans: pd.DataFrame) -> str | None:
    """One line when the scans' grids differ in voxel size (ReHo neighbourhoods are counted in
    voxels, so ReHo of different grids is not comparable), else None."""
    if "voxel_size_mm" not in scans:
        return None
    sizes = scans["voxel_size_mm"].dropna().astype(str)
    sizes = sizes[sizes != ""].value_counts()
    if len(sizes) < 2:
        return None
    found = ", ".join(f"{k} mm: {v} scans" for k, v in sizes.items())
    return (f"the BOLD grids differ in voxel size ({found}); ReHo neighbourhoods are counted in voxels, so ReHo "
            "of different grids is not comparable: resample to one grid (fMRIPrep res-) or analyse one grid")


def analysed_scans(scans: list, excluded: dict[str, str], session: str = "",
                   bids_dir: str | Path = "", design: dict | None = None) -> tuple[list, list[dict], dict[str, str]]:
    """The scans to process: usable subjects (not in ``excluded``), analysed session(s) only.

    Parameters
    ----------
    scans : list of :class:`rviflow.io.bids.Scan` found in fmriprep_dir
    excluded : {participant_id: reason} of subjects whose participants.tsv row is unusable
    session, bids_dir : config ``session``; the BIDS root holding sessions.tsv (acq_time)
    design : config ``design``; with ``type: longitudinal`` the baseline and follow-up scans are
        kept (:func:`longitudinal_sessions`) and ``chosen`` maps each subject to its baseline

    Returns
    -------
    scans : the Scans kept
    rows : QC rows: subjects excluded (step 'participants' / 'session'), and with sessions in the
        cohort the session analysed per subject (step 'session', status ok)
    chosen : {participant_id: session} (:func:`analysed_sessions`)
    """
    rows = [dict(participant_id=pid, session="", step="participants", status="failed",
                 reason=f"participants.tsv: {excluded[pid]}")
            for pid in sorted({s.participant_id for s in scans} & set(excluded))]
    scans = [s for s in scans if s.participant_id not in excluded]
    available: dict[str, set] = {}
    for s in scans:
        available.setdefault(s.participant_id, set()).add(s.session or "")
    if design and design.get("type") == "longitudinal":
        files = {(s.participant_id, s.session or ""): s.bold for s in scans}
        both, more = longitudinal_sessions({p: sorted(v) for p, v in available.items()}, design["baseline"],
                                           design["followup"], files)
        kept = [s for s in scans if (s.session or "") in both.get(s.participant_id, [])]
        return kept, rows + more, {p: v[0] for p, v in both.items()}
    times = session_times(bids_dir, sorted(available)) if not session else {}
    chosen, not_there = analysed_sessions({p: sorted(v) for p, v in available.items()}, session, times)
    rows += not_there
    if any(v != {""} for v in available.values()):
        how = "config session" if session else ("earliest acq_time in sessions.tsv" if times else "only session")
        rows += [dict(participant_id=p, session=ses, step="session", status="ok",
                      reason=f"ses-{ses} analysed ({how}); found: {', '.join(f'ses-{x}' for x in sorted(available[p]))}")
                 for p, ses in sorted(chosen.items())]
    return [s for s in scans if chosen.get(s.participant_id) == (s.session or "")], rows, chosen


def scan_weights(scans: pd.DataFrame, rule: str) -> np.ndarray:
    """Weight of each scan within its (participant_id, session) under ``rule`` (see
    :data:`COMBINE_RULES`), summing to 1 per subject; vectorised over the cohort.

    mean: volumes kept after censoring (1 where unknown; equal weights if a subject's sum is 0);
    first: 1 for the lowest run number (then acquisition label); lowest_motion: 1 for the
    smallest mean FD (unknown FD last, ties by run).
    """
    if rule not in COMBINE_RULES:
        raise InputError(f"combine_runs {rule!r} is not one of {', '.join(COMBINE_RULES)}")
    keys = [scans["participant_id"].to_numpy(), scans["session"].to_numpy()]
    if rule == "mean":
        w = pd.to_numeric(scans["n_volumes_kept"], errors="coerce").fillna(1.0).clip(lower=0)
        w = w.where(w.groupby(keys).transform("sum") > 0, 1.0)
    else:
        order = pd.DataFrame(dict(
            pid=scans["participant_id"].to_numpy(), ses=scans["session"].to_numpy(),
            fd=pd.to_numeric(scans["mean_fd_mm"], errors="coerce").fillna(np.inf).to_numpy()
            if rule == "lowest_motion" else 0.0,
            run=pd.to_numeric(scans["run"].replace("", np.nan), errors="coerce").fillna(0).to_numpy(),
            acq=scans["acq"].astype(str).to_numpy(), pos=np.arange(len(scans))))
        best = order.sort_values(["pid", "ses", "fd", "run", "acq", "pos"]).drop_duplicates(["pid", "ses"])["pos"]
        w = pd.Series(0.0, index=scans.index)
        w.iloc[best.to_numpy()] = 1.0
    return (w / w.groupby(keys).transform("sum")).to_numpy(float)


def combine_scans(scans: pd.DataFrame, rule: str = "mean",
                  sessions: dict[str, str] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """One row per subject from scan-level parcel rows.

    Parameters
    ----------
    scans : DataFrame, scans x [:data:`SCAN_COLUMNS`..., regions...]
        Usable scans (failed ones already left out); run / acq '' when absent.
    rule : one of :data:`COMBINE_RULES`
    sessions : {participant_id: session} from :func:`analysed_sessions`; None = every subject
        has scans of one session only (else InputError).

    Returns
    -------
    table : DataFrame, subjects x [participant_id, session, regions...]
        A region missing in one scan (NaN) is combined from the scans that have it.
    record : list of dict, per subject: participant_id, session, scans (e.g. 'run-1 (w=0.40),
        run-2 (w=0.60)'), n_scans, rule.
    """
    regions = [c for c in scans.columns if c not in SCAN_COLUMNS]
    scans = scans.drop(columns=[c for c in ("voxel_size_mm",) if c in scans])
    for c in SCAN_COLUMNS[1:4]:
        scans[c] = scans[c].fillna("").astype(str) if c in scans else ""
    for c in SCAN_COLUMNS[4:6]:
        if c not in scans:
            scans[c] = np.nan
    if sessions is not None:
        scans = scans[[sessions.get(p) == s for p, s in zip(scans["participant_id"], scans["session"])]]
    if scans.empty:
        return pd.DataFrame(columns=["participant_id", "session", *regions]), []
    scans = scans.reset_index(drop=True)
    w = scan_weights(scans, rule)
    values = scans[regions].to_numpy(float)
    present = np.isfinite(values)
    keys = [scans["participant_id"].to_numpy(), scans["session"].to_numpy()]
    num = pd.DataFrame(np.where(present, values, 0.0) * w[:, None]).groupby(keys, sort=True).sum()
    den = pd.DataFrame(present * w[:, None]).groupby(keys, sort=True).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        combined = np.where(den.to_numpy() > 0, num.to_numpy() / den.to_numpy(), np.nan)
    used = w > 0
    names = [" ".join(filter(None, (f"acq-{a}" if a else "", f"run-{r}" if r else ""))) or "single scan"
             for r, a in zip(scans["run"], scans["acq"])]
    n_used = pd.Series(used.astype(int)).groupby(keys, sort=True).transform("sum").to_numpy()
    labels = pd.Series([f"{n} (w={x:.2f})" if k > 1 else n for n, x, k in zip(names, w, n_used)])
    listed = labels[used].groupby([k[used] for k in keys], sort=True).agg(", ".join)
    rows = [[pid, ses, *vals] for (pid, ses), vals in zip(num.index, combined)]
    record = [dict(participant_id=pid, session=ses, rule=rule, n_scans=int(k), scans=listed.loc[(pid, ses)])
              for (pid, ses), k in zip(num.index, pd.Series(used.astype(int)).groupby(keys, sort=True).sum())]
    dup = pd.Series([r[0] for r in rows]).duplicated()
    if dup.any():
        pid = rows[int(np.flatnonzero(dup)[0])][0]
        raise InputError(f"{pid} has scans in several sessions: set `session` in the config")
    table = pd.DataFrame(rows, columns=["participant_id", "session", *regions])
    return table, record
