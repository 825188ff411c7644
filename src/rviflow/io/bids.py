"""BIDS / fMRIPrep-derivative input discovery, output naming, sidecars and participants.tsv.

Every path the pipeline writes is built here from BIDS entities (never by hand-joined strings
in rules or scripts).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rviflow import __version__
from rviflow.errors import InputError, OutputError

#: BIDS entity order for file names (subset we use)
ENTITY_ORDER = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "space", "res", "desc")
_ENTITY_RE = re.compile(r"([a-zA-Z0-9]+)-([a-zA-Z0-9]+)")


def parse_entities(name: str) -> dict[str, str]:
    """Entities of a BIDS file name, e.g. ``sub-01_task-rest_bold.nii.gz`` -> {sub: 01, task: rest}."""
    stem = Path(name).name.split(".")[0]
    return {k: v for k, v in _ENTITY_RE.findall(stem) if k in ENTITY_ORDER}


def bids_name(entities: dict[str, str], suffix: str, ext: str) -> str:
    """File name from entities in BIDS order, a suffix and an extension ('.nii.gz', '.json')."""
    parts = [f"{k}-{entities[k]}" for k in ENTITY_ORDER if entities.get(k)]
    return "_".join(parts + [suffix]) + ext


@dataclass(frozen=True)
class Scan:
    """One preprocessed BOLD run found in the fMRIPrep directory.

    ``key`` is the scan's path stem relative to a derivatives root, e.g.
    ``sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1``: the Snakemake wildcard for per-scan rules.
    """

    participant_id: str
    session: str | None
    entities: tuple[tuple[str, str], ...]
    bold: str
    confounds: str
    mask: str
    key: str = field(default="")

    @property
    def ents(self) -> dict[str, str]:
        return dict(self.entities)


def scan_key(ents: dict[str, str]) -> str:
    """Relative path stem (no space/desc/suffix) of a scan: the per-scan wildcard value."""
    base = {k: v for k, v in ents.items() if k not in ("space", "res", "desc")}
    folder = f"sub-{base['sub']}" + (f"/ses-{base['ses']}" if base.get("ses") else "")
    return f"{folder}/func/" + bids_name(base, "", "").rstrip("_")


def discover_scans(
    fmriprep_dir: str | Path, task: str, space: str, res: str = "", run: str = "", acq: str = "",
) -> tuple[list[Scan], list[dict[str, str]]]:
    """Find ``sub-*/[ses-*/]func/*_task-<task>_space-<space>_desc-preproc_bold.nii[.gz]``.

    ``res`` keeps only that ``res-`` entity ('native' = none); '' accepts one resolution (a run in
    two resolutions, or a cohort mixing them, raises InputError naming them and the key ``res``).
    ``run`` / ``acq`` (non-empty) keep only that run / acquisition. Confounds are fMRIPrep's
    ``desc-confounds_timeseries.tsv`` (>= 20.2) or ``desc-confounds_regressors.tsv`` (1.4-20.1).

    Returns
    -------
    scans : list of Scan
        Runs with their confounds TSV and brain mask present.
    problems : list of dict
        QC rows (participant_id, session, step='discover', status='failed', reason) for runs
        whose confounds or mask is missing, and for func folders whose preprocessed BOLD is only
        in other spaces; they are not processed.
    """
    root = Path(fmriprep_dir)
    if not root.is_dir():
        raise InputError(f"fmriprep_dir {root} does not exist or is not a directory")
    scans, problems = [], []
    pattern = f"*_task-{task}_*space-{space}_*desc-preproc_bold.nii*"
    wanted = dict(res="" if res == "native" else res, run=run, acq=acq)
    for func, names in _func_listings(root):
        matched = sorted(n for n in fnmatch.filter(names, pattern) if n.endswith((".nii", ".nii.gz")))
        for name in matched:
            ents = parse_entities(name)
            if (res and ents.get("res", "") != wanted["res"]) or any(v and ents.get(k) != v for k, v in
                                                                      wanted.items() if k != "res"):
                continue
            _add_scan(func / name, names, task, space, scans, problems)
        other = sorted(fnmatch.filter(names, f"*_task-{task}_*desc-preproc_bold.nii*"))
        if other and not matched:  # preprocessed, but not in the space the atlas is in
            ents = parse_entities(other[0])
            problems.append(dict(
                participant_id=f"sub-{ents['sub']}", session=ents.get("ses", ""), step="discover", status="failed",
                reason=f"{func / other[0]}: preprocessed BOLD is in space-{ents.get('space', '?')}, not space-{space} "
                       f"(the atlas space): add {space} to fMRIPrep's --output-spaces"))
    if not res:
        _check_resolutions(scans)
    return scans, problems


def _check_resolutions(scans: list[Scan]) -> None:
    """InputError when a run is there in several resolutions, or the cohort mixes them (outputs
    are named with one res- entity): the config key ``res`` must choose."""
    by_key: dict[str, set[str]] = {}
    for s in scans:
        by_key.setdefault(s.key, set()).add(s.ents.get("res", ""))
    label = lambda r: f"res-{r}" if r else "native (no res-)"  # noqa: E731
    for key, found in by_key.items():
        if len(found) > 1:
            raise InputError(f"{key}: the BOLD is there in {len(found)} resolutions ({', '.join(map(label, sorted(found)))}"
                             f"): set `res` in the config to the one to analyse (e.g. res: {sorted(found)[-1] or 'native'})")
    found = {r for v in by_key.values() for r in v}
    if len(found) > 1:
        raise InputError(f"the cohort's BOLD files come in several resolutions ({', '.join(map(label, sorted(found)))}): "
                         f"set `res` in the config to the one to analyse")


def scans_resolution(scans: list[Scan]) -> str:
    """The res- label shared by the scans ('' = native / none)."""
    return next((s.ents.get("res", "") for s in scans), "")


def _func_listings(root: Path):
    """(folder, names in it) of every ``sub-*/func`` and ``sub-*/ses-*/func`` under ``root``, in
    path order; each directory is listed once (os.scandir), so discovery is linear in the tree."""
    def subdirs(path):
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_dir())

    for sub in (d for d in subdirs(root) if d.startswith("sub-")):
        for child in subdirs(root / sub):
            if child == "func":
                folders = [root / sub / "func"]
            elif child.startswith("ses-"):
                folders = [root / sub / child / "func"] if "func" in subdirs(root / sub / child) else []
            else:
                continue
            for func in folders:
                with os.scandir(func) as it:
                    yield func, {e.name for e in it}


def _add_scan(bold: Path, names: set[str], task: str, space: str, scans: list, problems: list) -> None:
    """One preprocessed BOLD: a Scan if its confounds and mask (``names`` of its folder) are there,
    else QC rows naming what is missing."""
    ents = parse_entities(bold.name)
    if ents.get("task") != task or ents.get("space") != space or ents.get("desc") != "preproc":
        return
    base = {k: v for k, v in ents.items() if k not in ("space", "res", "desc")}
    # fMRIPrep >= 20.2 names the confounds _timeseries, 1.4-20.1 _regressors (nilearn reads both)
    confs = [bold.parent / bids_name(base, f"desc-confounds_{kind}", ".tsv") for kind in ("timeseries", "regressors")]
    conf = next((c for c in confs if c.name in names), confs[0])
    ext = ".nii" if bold.name.endswith(".nii") else ".nii.gz"
    masks = [bold.parent / bids_name({**ents, "desc": "brain"}, "mask", e) for e in (ext, ".nii.gz", ".nii")]
    mask = next((m for m in masks if m.name in names), masks[0])
    pid = f"sub-{ents['sub']}"
    ses = ents.get("ses")
    missing = [(p, what) for p, what in ((conf, "confounds file"), (mask, "brain mask")) if p.name not in names]
    if missing:
        for p, what in missing:
            problems.append(
                dict(participant_id=pid, session=ses or "", run=ents.get("run", ""), acq=ents.get("acq", ""),
                     step="discover", status="failed", reason=f"{what} missing: {p}")
            )
        return
    scans.append(
        Scan(pid, ses, tuple(sorted(ents.items())), str(bold), str(conf), str(mask), scan_key(ents))
    )


def match_participants(
    scans: list[Scan], problems: list[dict[str, str]], participants: pd.DataFrame
) -> tuple[list[Scan], list[dict[str, str]]]:
    """Keep scans whose subject has a participants row; report both kinds of mismatch in QC rows."""
    known = set(participants["participant_id"])
    with_data = {s.participant_id for s in scans} | {p["participant_id"] for p in problems}
    rows = list(problems)
    kept = []
    for s in scans:
        if s.participant_id in known:
            kept.append(s)
        else:
            rows.append(dict(participant_id=s.participant_id, session=s.session or "", step="discover",
                             status="failed", reason=f"has data ({s.bold}) but no row in participants.tsv"))
    for pid in sorted(known - with_data):
        rows.append(dict(participant_id=pid, session="", step="discover", status="failed",
                         reason="in participants.tsv but no preprocessed BOLD found for the task and space"))
    return kept, rows


def read_participants(path: str | Path, required: list[str], numeric: tuple[str, ...] = ("age",)) -> pd.DataFrame:
    """Read participants.tsv, checking participant_id format and the configured columns.

    ``required`` are the group / covariate / site columns the config names; a missing column,
    a participant_id that is not ``sub-<label>`` (path separators and '..' included), a
    duplicate, or a non-numeric value in a ``numeric`` column raises InputError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"participants table not found: {path}")
    try:
        df = pd.read_csv(path, sep="\t", dtype={"participant_id": str}, na_values=["n/a", "NA", ""])
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: participants table is empty") from None
    if df.empty:
        raise InputError(f"{path}: participants table has a header but no rows")
    missing = [c for c in ["participant_id", *required] if c not in df.columns]
    if missing:
        raise InputError(f"{path}: column(s) {', '.join(missing)} missing (columns: {', '.join(df.columns)})")
    bad = df.loc[~df["participant_id"].astype(str).str.match(r"^sub-[a-zA-Z0-9]+$"), "participant_id"]
    if len(bad):
        raise InputError(f"{path}: participant_id {bad.iloc[0]!r} is not of the form sub-<label>")
    dup = df.loc[df["participant_id"].duplicated(), "participant_id"]
    if len(dup):
        raise InputError(f"{path}: participant_id {dup.iloc[0]} appears more than once")
    for col in numeric:
        if col in df.columns and not pd.api.types.is_numeric_dtype(df[col]):
            num = pd.to_numeric(df[col], errors="coerce")
            bad = df.loc[num.isna() & df[col].notna()]
            if len(bad):
                raise InputError(f"{path}: {bad['participant_id'].iloc[0]}: {col} = {bad[col].iloc[0]!r} "
                                 "is not a number")
            df[col] = num
    return df


def clean_participants(df: pd.DataFrame, group_column: str, case_label: str, control_label: str,
                       covariates: list[str], site_column: str = "", symptoms: list[str] = (),
                       ) -> tuple[pd.DataFrame, list[dict]]:
    """Check every row of participants.tsv for the analysis; the usable rows and every problem.

    Cells are stripped of surrounding spaces; symptom columns are matched case-insensitively
    (renamed to the configured name). A row is unusable when its group is missing or neither
    ``case_label`` nor ``control_label`` (left out, counted), or a covariate / site value is
    missing or, in a numeric column (most values numbers, e.g. age), not a number (``89+``).

    Returns
    -------
    clean : DataFrame, the usable rows (numeric covariates as numbers, group as text)
    problems : list of dict (participant_id, column, value, key, reason): one per unusable
        cell, ``reason`` a one-line message naming subject, column, value and config key.
    """
    df = df.copy()
    df.columns = [str(c).strip() for c in df.columns]
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].map(lambda v: v.strip() if isinstance(v, str) else v).replace({"": None, "n/a": None})
    lower = {c.lower(): c for c in df.columns}
    df = df.rename(columns={lower[s.lower()]: s for s in symptoms if s not in df.columns and s.lower() in lower})
    problems = []

    def problem(pid, column, value, key, what):
        shown = "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else repr(value)
        problems.append(dict(participant_id=pid, column=column, value=shown, key=key,
                             reason=f"{column} = {shown} {what} (config {key})"))

    labels = df[group_column].map(lambda v: None if v is None or v != v else
                                  (str(int(v)) if isinstance(v, float) and v == int(v) else str(v)))
    for pid, lab in zip(df["participant_id"], labels):
        if lab is None:
            problem(pid, group_column, None, "groups.column", "is missing")
        elif lab not in (str(case_label), str(control_label)):
            problem(pid, group_column, lab, "groups.case / groups.control",
                    f"is neither case {case_label!r} nor control {control_label!r}: left out")
    df[group_column] = labels
    for col, key in [(c, "covariates") for c in covariates] + ([(site_column, "site_column")] if site_column else []):
        num = pd.to_numeric(df[col], errors="coerce")
        numeric = col != site_column and num.notna().sum() > 0.5 * df[col].notna().sum()
        for pid, v, n in zip(df["participant_id"], df[col], num):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                problem(pid, col, None, key, "is missing")
            elif numeric and np.isnan(n):
                problem(pid, col, v, key, "is not a number")
        if numeric:
            df[col] = num
    bad = {p["participant_id"] for p in problems}
    return df[~df["participant_id"].isin(bad)].reset_index(drop=True), problems


def derivative_path(output_dir: str | Path, key: str, space: str | None, desc: str, suffix: str, ext: str,
                    res: str = "") -> Path:
    """Output path under ``output_dir`` for a scan ``key`` (see :func:`scan_key`); ``res`` keeps the
    input's res- entity in the name."""
    parts = [key]
    if space:
        parts.append(f"space-{space}")
    if res:
        parts.append(f"res-{res}")
    parts.append(f"desc-{desc}")
    return Path(output_dir) / ("_".join(parts) + f"_{suffix}{ext}")


def read_json(path: str | Path) -> dict:
    with open(path) as f:
        return json.load(f)


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path`` (same extension); it replaces ``path`` only if the
    block succeeds, so a killed or failed writer never leaves a half-written file under the
    final name. Temporaries a killed writer left for ``path`` are removed first. An OS error
    (disk full, no permission) becomes an :class:`~rviflow.errors.OutputError` naming ``path``."""
    path = Path(path)
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".tmp*-{path.name}"):
            stale.unlink()
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if isinstance(exc, OutputError) or exc.errno is None:  # errno None: not the OS's (e.g. bad gzip)
            raise
        raise OutputError(path, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, data: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


def write_tsv(df: pd.DataFrame, path: str | Path, **kwargs) -> None:
    """Write a table as TSV atomically ('n/a' for missing values, as BIDS does)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", na_rep="n/a", **kwargs)


def save_pickle(obj, path: str | Path) -> None:
    """Pickle ``obj`` (a fitted model) atomically (see :func:`atomic_path`)."""
    import pickle

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)


def software_versions() -> dict[str, str]:
    """Versions of rviflow and the packages that shape the numbers (the locked ones, as installed),
    for JSON sidecars, dataset_description.json and the report's methods."""
    from rviflow.pipeline.envlock import installed_versions

    return {"rviflow": __version__, **installed_versions()}


def write_dataset_description(output_dir: str | Path, source_dirs: list[str]) -> None:
    """BIDS-derivatives ``dataset_description.json`` at the root of the output tree."""
    from rviflow.pipeline.envlock import lock_digest

    write_json(
        Path(output_dir) / "dataset_description.json",
        {
            "Name": "rviflow derivatives",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "rviflow", "Version": __version__,
                             "CodeURL": "https://github.com/rviflow/rviflow",
                             # the exact environment: the lock setup.sh installed and the versions in use
                             "Lock": f"locks/main.txt sha256:{lock_digest()}" if lock_digest() else "none",
                             "SoftwareVersions": software_versions()}],
            "SourceDatasets": [{"URL": f"file://{Path(d).resolve()}"} for d in source_dirs],
        },
    )


def save_nifti(img, path: str | Path) -> None:
    """nibabel save, atomically (see :func:`atomic_path`)."""
    import nibabel as nib

    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def check_config_paths(bids_dir: str, fmriprep_dir: str, output_dir: str, participants: str = "") -> None:
    """Refuse input paths that do not exist and an output_dir that would write into the inputs.

    The output may sit under ``<bids_dir>/derivatives/`` (the BIDS convention) but not elsewhere
    inside bids_dir, nor inside fmriprep_dir, nor contain either of them. An empty bids_dir or
    fmriprep_dir is not checked (a tables-only run has neither).
    """
    given = {k: v for k, v in (("bids_dir", bids_dir), ("fmriprep_dir", fmriprep_dir)) if v}
    for key, value in given.items():
        if not Path(value).is_dir():
            raise InputError(f"config {key}: {value} does not exist or is not a directory")
    if participants and not Path(participants).is_file():
        raise InputError(f"config participants: {participants} does not exist")
    out = Path(output_dir).resolve()
    roots = {k: Path(v).resolve() for k, v in given.items()}
    for key, root in roots.items():
        if out == root or root.is_relative_to(out):
            raise InputError(f"config output_dir: {out} is or contains {key} {root}; choose a separate directory")
    if "fmriprep_dir" in roots and out.is_relative_to(fmriprep := roots["fmriprep_dir"]):
        raise InputError(f"config output_dir: {out} is inside fmriprep_dir {fmriprep}; choose a separate directory")
    bids = roots.get("bids_dir")
    if bids and out.is_relative_to(bids) and not out.is_relative_to(bids / "derivatives"):
        raise InputError(f"config output_dir: {out} is inside bids_dir {bids} (outside its derivatives/ folder); "
                         "choose e.g. <bids_dir>/derivatives/rviflow")


def write_participants_table(participants_tsv: str, out: str, groups: dict, covariates: list[str], site_column: str,
                             symptoms: list[str]) -> pd.DataFrame:
    """The usable rows of participants.tsv, with the columns the analysis uses, to ``out``; every
    row's problem printed (one line each: subject and reason, :func:`clean_participants`)."""
    raw = read_participants(participants_tsv, [], numeric=())
    clean, problems = clean_participants(raw, groups["column"], groups["case"], groups["control"], list(covariates),
                                         site_column, list(symptoms))
    used = ["participant_id", groups["column"], *covariates, site_column, *symptoms]
    write_tsv(clean[[c for c in dict.fromkeys(used) if c and c in clean.columns]], out)
    print(f"{len(clean)} usable rows, {len({p['participant_id'] for p in problems})} excluded")
    for p in problems:
        print(f"{p['participant_id']}: {p['reason']}")
    return clean
