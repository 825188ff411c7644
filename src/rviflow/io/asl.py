"""BIDS-ASL input: discovery, sidecar + aslcontext reading and validation.

Reads every field CBF quantification needs (BIDS 1.9, "Arterial Spin Labeling"):
ArterialSpinLabelingType, PostLabelingDelay (scalar or one per volume; several distinct values =
multi-PLD), LabelingDuration, BolusCutOffFlag / BolusCutOffTechnique / BolusCutOffDelayTime,
LabelingEfficiency, BackgroundSuppression (+ BackgroundSuppressionNumberPulses), M0Type
(+ M0Estimate), RepetitionTimePreparation, MagneticFieldStrength, SliceTiming (+
MRAcquisitionType, SliceEncodingDirection) and the aslcontext volume types. Bad input raises
:class:`~rviflow.errors.InputError` with one line naming the subject, the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rviflow.io.bids import bids_name, parse_entities, read_json
from rviflow.errors import InputError

VOLUME_TYPES = ("control", "label", "deltam", "cbf", "m0scan", "noRF")
LABELING_TYPES = ("PCASL", "CASL", "PASL")
M0_TYPES = ("Separate", "Included", "Estimate", "Absent")
#: sidecar fields BIDS requires of every ASL series (others depend on the labelling type)
REQUIRED = ("ArterialSpinLabelingType", "PostLabelingDelay", "BackgroundSuppression", "M0Type",
            "RepetitionTimePreparation", "MagneticFieldStrength")


@dataclass(frozen=True)
class AslSeries:
    """One BIDS-ASL series found in the raw dataset; ``key`` is its per-scan wildcard value."""

    participant_id: str
    session: str | None
    asl: str
    key: str


@dataclass
class AslParams:
    """Validated acquisition parameters of one ASL series (times in s).

    ``plds`` and ``tr_prep`` have one value per volume; ``bolus_ti1`` is TI1 of PASL with bolus
    cut-off (QUIPSS II: BolusCutOffDelayTime; Q2TIPS: its first value).
    """

    labeling_type: str
    context: list[str]
    plds: np.ndarray
    m0_type: str
    field_strength: float
    tr_prep: np.ndarray
    background_suppression: bool
    bs_pulses: int = 0
    labeling_duration: np.ndarray | None = None
    bolus_ti1: float | None = None
    bolus_technique: str | None = None
    labeling_efficiency: float | None = None
    m0_estimate: float | None = None
    slice_timing: np.ndarray | None = None
    slice_axis: int = 2
    slice_reversed: bool = False
    sidecar: dict = field(default_factory=dict)

    @property
    def multi_pld(self) -> bool:
        lab = np.isin(self.context, ("label", "deltam"))
        return len(np.unique(np.round(self.plds[lab], 6))) > 1


def asl_key(ents: dict[str, str]) -> str:
    """Relative path stem of an ASL series, e.g. ``sub-01/ses-1/perf/sub-01_ses-1_run-1``."""
    base = {k: v for k, v in ents.items() if k not in ("space", "res", "desc")}
    folder = f"sub-{base['sub']}" + (f"/ses-{base['ses']}" if base.get("ses") else "")
    return f"{folder}/perf/" + bids_name(base, "", "").rstrip("_")


def discover_asl(bids_dir: str | Path) -> list[AslSeries]:
    """Every ``sub-*/[ses-*/]perf/*_asl.nii[.gz]`` under ``bids_dir`` (sorted)."""
    root = Path(bids_dir)
    found = []
    for asl in sorted([*root.glob("sub-*/perf/*_asl.nii*"), *root.glob("sub-*/ses-*/perf/*_asl.nii*")]):
        ents = parse_entities(asl.name)
        if "sub" in ents:
            found.append(AslSeries(f"sub-{ents['sub']}", ents.get("ses"), str(asl), asl_key(ents)))
    return found


def companion(asl: str | Path, suffix: str, ext: str) -> Path:
    """A file of the same series by BIDS naming: ``*_asl.nii.gz`` -> ``*_<suffix><ext>``."""
    p = Path(asl)
    stem = p.name.split(".")[0].removesuffix("_asl")
    return p.with_name(f"{stem}_{suffix}{ext}")


def read_aslcontext(path: str | Path, n_volumes: int, subject: str | None = None) -> list[str]:
    """Volume types from ``*_aslcontext.tsv``, checked against the image's number of volumes."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"aslcontext file missing (field volume_type): {path.name} not found", subject, path)
    df = pd.read_csv(path, sep="\t", dtype=str)
    if "volume_type" not in df.columns:
        raise InputError("column volume_type missing", subject, path)
    types = df["volume_type"].str.strip().tolist()
    bad = sorted({t for t in types if t not in VOLUME_TYPES})
    if bad:
        raise InputError(f"volume_type {bad[0]!r} is not one of {', '.join(VOLUME_TYPES)}", subject, path)
    if len(types) != n_volumes:
        raise InputError(f"volume_type has {len(types)} rows but the ASL image has {n_volumes} volumes", subject, path)
    return types


def _per_volume(meta: dict, key: str, n: int, subject, path, required: bool = True) -> np.ndarray | None:
    if key not in meta or meta[key] is None:
        if required:
            raise InputError(f"required sidecar field {key} missing", subject, path)
        return None
    v = np.atleast_1d(np.asarray(meta[key], dtype=float))
    if v.size == 1:
        return np.full(n, float(v[0]))
    if v.size != n:
        raise InputError(f"field {key} has {v.size} values but the ASL image has {n} volumes", subject, path)
    return v


def asl_params(meta: dict, context: list[str], subject: str | None = None, path: str | Path | None = None) -> AslParams:
    """Validate an ``*_asl.json`` sidecar (``meta``) against its aslcontext (``context``)."""
    n = len(context)
    for key in REQUIRED:
        if key not in meta or meta[key] is None:
            raise InputError(f"required sidecar field {key} missing", subject, path)
    lt = str(meta["ArterialSpinLabelingType"]).upper()
    if lt not in LABELING_TYPES:
        raise InputError(f"field ArterialSpinLabelingType is {meta['ArterialSpinLabelingType']!r}, "
                         f"not one of {', '.join(LABELING_TYPES)}", subject, path)
    m0_type = str(meta["M0Type"])
    if m0_type not in M0_TYPES:
        raise InputError(f"field M0Type is {m0_type!r}, not one of {', '.join(M0_TYPES)}", subject, path)
    p = AslParams(
        labeling_type=lt, context=list(context), plds=_per_volume(meta, "PostLabelingDelay", n, subject, path),
        m0_type=m0_type, field_strength=float(meta["MagneticFieldStrength"]),
        tr_prep=_per_volume(meta, "RepetitionTimePreparation", n, subject, path),
        background_suppression=bool(meta["BackgroundSuppression"]), sidecar=dict(meta),
        labeling_efficiency=float(meta["LabelingEfficiency"]) if meta.get("LabelingEfficiency") else None,
    )
    types = set(context)
    if not ({"control", "label"} <= types or types & {"deltam", "cbf"}):
        raise InputError("field volume_type: no control/label pairs (and no deltam or cbf volumes)", subject,
                         str(path).replace("_asl.json", "_aslcontext.tsv") if path else None)
    if p.background_suppression:
        if meta.get("BackgroundSuppressionNumberPulses") is None:
            raise InputError("BackgroundSuppression is true but field BackgroundSuppressionNumberPulses is missing "
                             "(needed for the labelling efficiency)", subject, path)
        p.bs_pulses = int(meta["BackgroundSuppressionNumberPulses"])
    if lt in ("PCASL", "CASL"):
        p.labeling_duration = _per_volume(meta, "LabelingDuration", n, subject, path)
    else:
        if "BolusCutOffFlag" not in meta:
            raise InputError("required sidecar field BolusCutOffFlag missing (PASL)", subject, path)
        if not meta["BolusCutOffFlag"]:
            raise InputError("PASL without bolus cut-off (field BolusCutOffFlag is false): the bolus duration TI1 "
                             "is unknown, CBF cannot be quantified", subject, path)
        for key in ("BolusCutOffTechnique", "BolusCutOffDelayTime"):
            if meta.get(key) is None:
                raise InputError(f"required sidecar field {key} missing (PASL with BolusCutOffFlag true)",
                                 subject, path)
        p.bolus_technique = str(meta["BolusCutOffTechnique"])
        delays = np.atleast_1d(np.asarray(meta["BolusCutOffDelayTime"], dtype=float))
        # QUIPSS II: one delay = TI1; Q2TIPS: first and last saturation pulse, TI1 = the first
        p.bolus_ti1 = float(delays[0])
    if m0_type == "Estimate":
        if meta.get("M0Estimate") is None:
            raise InputError("M0Type is Estimate but field M0Estimate is missing", subject, path)
        p.m0_estimate = float(meta["M0Estimate"])
    if m0_type == "Included" and "m0scan" not in types:
        raise InputError("M0Type is Included but field volume_type has no m0scan volume", subject,
                         str(path).replace("_asl.json", "_aslcontext.tsv") if path else None)
    if meta.get("SliceTiming") is not None and str(meta.get("MRAcquisitionType", "2D")).upper() == "2D":
        p.slice_timing = np.asarray(meta["SliceTiming"], dtype=float)
        direction = str(meta.get("SliceEncodingDirection", "k"))
        p.slice_axis = "ijk".index(direction[0])
        p.slice_reversed = direction.endswith("-")
    return p


def load_asl(asl: str | Path, subject: str | None = None, need_m0scan: bool = True):
    """The 4-D ASL image, its validated parameters and the separate M0 image path (or None).

    Companions are found by BIDS naming: ``*_asl.json``, ``*_aslcontext.tsv``, ``*_m0scan.nii[.gz]``.
    ``need_m0scan=False``: a missing separate M0 is not an error (one is given otherwise).
    """
    import nibabel as nib

    asl = Path(asl)
    subject = subject or (f"sub-{parse_entities(asl.name)['sub']}" if "sub" in parse_entities(asl.name) else None)
    if not asl.exists():
        raise InputError("ASL image not found", subject, asl)
    try:
        img = nib.load(str(asl))
    except Exception as exc:
        raise InputError(f"unreadable NIfTI ({exc})", subject, asl) from None
    if img.ndim != 4:
        raise InputError(f"has {img.ndim} dimensions, CBF needs a 4-D ASL series", subject, asl)
    side = companion(asl, "asl", ".json")
    if not side.exists():
        raise InputError(f"sidecar {side.name} missing (fields ArterialSpinLabelingType, PostLabelingDelay, ...)",
                         subject, side)
    context = read_aslcontext(companion(asl, "aslcontext", ".tsv"), img.shape[3], subject)
    params = asl_params(read_json(side), context, subject, side)
    m0 = None
    if params.m0_type == "Separate":
        m0 = next((c for c in (companion(asl, "m0scan", ".nii.gz"), companion(asl, "m0scan", ".nii")) if c.exists()),
                  None)
        if m0 is None and need_m0scan:
            raise InputError(f"M0Type is Separate but {companion(asl, 'm0scan', '.nii.gz').name} is missing",
                             subject, side)
    return img, params, m0


def m0_tr(m0_path: str | Path, subject: str | None = None) -> float | None:
    """RepetitionTimePreparation (else RepetitionTime) of a separate M0 scan from the JSON beside it
    (``*_m0scan.nii.gz`` -> ``*_m0scan.json``; any ``x.nii[.gz]`` -> ``x.json``), None without one."""
    p = Path(m0_path)
    side = p.with_name(p.name.split(".")[0] + ".json")
    if not side.exists():
        return None
    meta = read_json(side)
    tr = meta.get("RepetitionTimePreparation", meta.get("RepetitionTime"))
    return float(np.atleast_1d(tr)[0]) if tr is not None else None


@dataclass(frozen=True)
class CbfInput:
    """What the per-subject CBF step reads: the ASL series (or map), the template grid, transforms."""

    participant_id: str
    session: str | None
    source_file: str
    reference: str  #: template-space brain mask of the subject's BOLD (the output grid)
    in_template: bool
    t1w: str | None = None
    xfm: str | None = None


def _anat(fmriprep_dir: Path, pid: str, ses: str | None, name: str) -> Path | None:
    """fMRIPrep anatomical output, subject-level (``sub-X/anat``) or session-level."""
    for folder, stem in ((fmriprep_dir / pid / "anat", pid),
                         *(((fmriprep_dir / pid / f"ses-{ses}" / "anat", f"{pid}_ses-{ses}"),) if ses else ())):
        p = folder / f"{stem}_{name}"
        if p.exists():
            return p
    return None


def plan_cbf_inputs(scans, space: str, fmriprep_dir: str | Path, source: str = "asl", bids_dir: str | Path = "",
                    maps_dir: str | Path = "", maps_glob: str = "", asl_space: str = "") -> tuple[dict, list[dict]]:
    """Per-series CBF inputs, keyed by the series' wildcard value, and discovery QC rows.

    ``scans`` are the BOLD scans being processed (:class:`rviflow.io.bids.Scan`): a series needs
    a BOLD of the same subject (and session) whose template-space brain mask gives the grid.
    ``source`` asl reads BIDS-ASL from ``bids_dir``; aslprep / spect read 3-D maps matching
    ``maps_glob`` (``{space}`` filled in) under ``maps_dir``. ASL counts as template space when
    its name carries ``space-<space>`` or ``asl_space`` equals ``space``; else it is registered
    through fMRIPrep's desc-preproc_T1w and from-T1w_to-<space>_mode-image_xfm.h5.
    """
    if source == "asl":
        found = [(s.participant_id, s.session, s.asl, s.key) for s in discover_asl(bids_dir)]
    else:
        root = Path(maps_dir)
        if not root.is_dir():
            raise InputError(f"cbf.maps_dir {root} does not exist or is not a directory")
        found = []
        for p in sorted(root.glob(maps_glob.format(space=space))):
            ents = parse_entities(p.name)
            if "sub" in ents:
                found.append((f"sub-{ents['sub']}", ents.get("ses"), str(p), asl_key(ents)))
    by_subject = {}
    for s in sorted(scans, key=lambda s: s.key):
        by_subject.setdefault((s.participant_id, s.session), s)
        by_subject.setdefault((s.participant_id, None), s)
    plans, problems = {}, []
    fmriprep_dir = Path(fmriprep_dir)
    for pid, ses, path, key in found:
        scan = by_subject.get((pid, ses)) or by_subject.get((pid, None))
        if scan is None:
            problems.append(dict(participant_id=pid, session=ses or "", step="discover_cbf", status="failed",
                                 reason=f"{Path(path).name}: no usable space-{space} BOLD of this subject, whose "
                                        "brain mask gives the CBF grid"))
            continue
        in_template = source != "asl" or parse_entities(Path(path).name).get("space") == space or asl_space == space
        t1w = xfm = None
        if not in_template:
            t1w = _anat(fmriprep_dir, pid, ses, "desc-preproc_T1w.nii.gz")
            xfm = _anat(fmriprep_dir, pid, ses, f"from-T1w_to-{space}_mode-image_xfm.h5")
            if t1w is None or xfm is None:
                what = "desc-preproc_T1w.nii.gz" if t1w is None else f"from-T1w_to-{space}_mode-image_xfm.h5"
                problems.append(dict(participant_id=pid, session=ses or "", step="discover_cbf", status="failed",
                                     reason=f"{Path(path).name} is in native space but fMRIPrep's {what} is missing "
                                            f"under {fmriprep_dir / pid}"))
                continue
        plans[key] = CbfInput(pid, ses, path, scan.mask, in_template, str(t1w) if t1w else None,
                              str(xfm) if xfm else None)
    return plans, problems
