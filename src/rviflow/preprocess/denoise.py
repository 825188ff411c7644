"""Nuisance regression and band-pass of fMRIPrep-preprocessed BOLD, using nilearn.

Confounds are chosen with ``nilearn.interfaces.fmriprep.load_confounds`` (default 24 motion
parameters + white matter + CSF, optional scrubbing by framewise displacement) and removed with
``nilearn.signal.clean`` together with the band-pass (default 0.01-0.08 Hz), in one step so the
filter and the regression do not reintroduce each other's signal.

Speed (issue #19): ``clean`` is linear in the signals when they are not standardised (detrending,
the interpolation of censored volumes, the Butterworth filter and the confound projection each
are), so nilearn's clean is run once on the (T, T) identity to give the operator ``M`` (T_kept, T),
which then cleans every voxel with one float32 matrix product (:func:`clean_operator`): the maths
stays nilearn's, at a fraction of its float64 per-voxel filtering cost; outputs agree with
``clean(signals)`` to float32 rounding (tests/preprocess/test_denoise.py). A fused chain can keep the cleaned
series in memory (:func:`rviflow.io.nifti.hold_series`) for the measures that read it, instead of writing and
re-reading a compressed 4-D intermediate. Images are read by :mod:`rviflow.io.nifti`.
"""

from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from rviflow.errors import InputError
from rviflow.io.nifti import load_4d, load_mask, read_data

DEFAULT_STRATEGY = ("motion", "wm_csf")


def repetition_time(bold_path: str | Path, img: nib.Nifti1Image) -> float:
    """TR in seconds from the JSON sidecar (``RepetitionTime``), else the NIfTI header."""
    side = Path(str(bold_path).replace(".nii.gz", ".json").replace(".nii", ".json"))
    if side.exists():
        tr = json.loads(side.read_text()).get("RepetitionTime")
        if tr is not None:
            return float(tr)
    zooms = img.header.get_zooms()
    tr = float(zooms[3]) if len(zooms) > 3 else 0.0
    units = img.header.get_xyzt_units()[1]
    if units == "msec":
        tr /= 1000.0
    if tr <= 0:
        raise InputError("no RepetitionTime in the JSON sidecar and none in the NIfTI header", path=str(bold_path))
    return tr


#: fMRIPrep 1.2-1.3 CamelCase confound names (1.4 renamed them to snake_case, which nilearn reads)
_CAMELCASE_CONFOUNDS = ("FramewiseDisplacement", "WhiteMatter", "GlobalSignal", "RotX", "stdDVARS", "aCompCor00")


def confounds_path(bold_path: str | Path) -> Path:
    """fMRIPrep's confounds TSV of a preprocessed BOLD: ``_desc-confounds_timeseries.tsv``
    (fMRIPrep >= 20.2) or ``_desc-confounds_regressors.tsv`` (1.4-20.1), the one that exists."""
    stem = str(bold_path).split("_space-")[0]
    paths = [Path(f"{stem}_desc-confounds_{kind}.tsv") for kind in ("timeseries", "regressors")]
    return next((p for p in paths if p.exists()), paths[0])


def check_confounds_header(path: str | Path) -> None:
    """InputError (one line) for confounds of fMRIPrep 1.2-1.3, whose CamelCase column names
    (FramewiseDisplacement, X, RotX, WhiteMatter, ...) nilearn cannot read."""
    with open(path) as fh:
        header = fh.readline().rstrip("\n").split("\t")
    old = [c for c in _CAMELCASE_CONFOUNDS if c in header]
    if old:
        raise InputError(f"confounds have fMRIPrep 1.2-1.3 column names ({', '.join(old[:3])}); rviflow (nilearn) "
                         "reads the confounds of fMRIPrep >= 1.4: re-run fMRIPrep (20.2 LTS or later)", path=str(path))


def check_confounds_values(path: str | Path, columns) -> None:
    """InputError naming the column and rows for n/a beyond the first row (fMRIPrep leaves n/a
    only in the first row of derivatives / FD / DVARS; more, e.g. in concatenated runs, would
    reach the regression as NaN)."""
    raw = pd.read_csv(path, sep="\t", na_values="n/a", usecols=lambda c: c in set(columns))
    later = raw.iloc[1:].isna()
    if later.to_numpy().any():
        col = later.columns[later.any()][0]
        rows = (np.flatnonzero(later[col].to_numpy()) + 2).tolist()  # 1 = first data row
        shown = ", ".join(map(str, rows[:5])) + (f" ... ({len(rows)} rows)" if len(rows) > 5 else "")
        raise InputError(f"confounds column {col!r} has n/a beyond the first row (data rows {shown}); "
                         "only the first row may be n/a (concatenated runs? use one file per run)", path=str(path))


def denoise_bold(
    bold_path: str | Path,
    mask_path: str | Path,
    strategy: tuple[str, ...] | list[str] = DEFAULT_STRATEGY,
    motion: str = "full",
    wm_csf: str = "basic",
    global_signal: str = "basic",
    scrub: bool = False,
    fd_threshold: float = 0.5,
    std_dvars_threshold: float = 1.5,
    scrub_min_segment: int = 5,
    high_pass: float | None = 0.01,
    low_pass: float | None = 0.08,
    min_timepoints: int = 50,
    threads: int = 1,
) -> tuple[nib.Nifti1Image, dict]:
    """Regress confounds and band-pass a preprocessed BOLD run.

    Parameters
    ----------
    bold_path : path
        ``*_desc-preproc_bold.nii.gz``; its ``*_desc-confounds_timeseries.tsv`` (+ .json) must
        sit beside it with fMRIPrep naming (nilearn finds it from the BOLD name).
    mask_path : path
        Brain mask on the BOLD grid.
    strategy, motion, wm_csf, global_signal
        Passed to ``nilearn.interfaces.fmriprep.load_confounds``.
    scrub : bool
        Censor high-motion volumes (FD > ``fd_threshold`` mm or standardised DVARS >
        ``std_dvars_threshold``), segments shorter than ``scrub_min_segment`` too.
    high_pass, low_pass : float or None
        Band-pass edges in Hz.
    min_timepoints : int
        Fewer volumes left after censoring raise InputError.
    threads : int
        Threads for the cleaning product (the result does not depend on it: :func:`apply_operator`).

    Returns
    -------
    img : Nifti1Image
        (X, Y, Z, T_kept) float32 cleaned series, 0 outside the mask.
    qc : dict
        n_volumes, n_volumes_kept, mean_fd_mm, tr_s, voxel_size_mm ('2x2x2'), confounds (column names).
    """
    img = load_4d(bold_path, "BOLD")
    mask = load_mask(mask_path, img.shape, img.affine)
    # the voxel data are read (ISA-L inflate, GIL released) while the confounds and the cleaning
    # operator are prepared: ~0.5-1 s less per UK Biobank-sized run (benchmarks/bench_subject.py)
    reader = ThreadPoolExecutor(max_workers=1)
    data = reader.submit(read_data, img, bold_path)
    try:
        return _denoise(img, data, mask, bold_path, strategy, motion, wm_csf, global_signal, scrub, fd_threshold,
                        std_dvars_threshold, scrub_min_segment, high_pass, low_pass, min_timepoints, threads)
    finally:
        reader.shutdown(wait=False, cancel_futures=True)  # an input error: do not wait for the read


def _denoise(img, data, mask, bold_path, strategy, motion, wm_csf, global_signal, scrub, fd_threshold,
             std_dvars_threshold, scrub_min_segment, high_pass, low_pass, min_timepoints, threads):
    from nilearn.interfaces.fmriprep import load_confounds

    tr = repetition_time(bold_path, img)
    n_vol = img.shape[3]
    strategy = list(strategy) + (["scrub"] if scrub and "scrub" not in strategy else [])
    conf = confounds_path(bold_path)
    if conf.exists():
        check_confounds_header(conf)
    # nilearn finds the confounds from a .nii.gz name only; an uncompressed .nii is looked up as such
    name = str(bold_path) + (".gz" if str(bold_path).endswith(".nii") else "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            confounds, sample_mask = load_confounds(
                name, strategy=tuple(strategy), motion=motion, wm_csf=wm_csf,
                global_signal=global_signal, scrub=scrub_min_segment, fd_threshold=fd_threshold,
                std_dvars_threshold=std_dvars_threshold, demean=True,
            )
    except Exception as exc:
        raise InputError(f"confounds unusable ({type(exc).__name__}: {exc})".replace("\n", " "),
                         path=str(conf)) from None
    check_confounds_values(conf, confounds.columns)
    if len(confounds) != n_vol:
        raise InputError(f"confounds have {len(confounds)} rows but the BOLD has {n_vol} volumes",
                         path=str(bold_path))
    kept = n_vol if sample_mask is None else len(sample_mask)
    if kept < min_timepoints:
        raise InputError(f"only {kept} volumes left after censoring (minimum {min_timepoints})", path=str(bold_path))

    try:
        # clean(signals) == clean(I) @ signals (linear; see the module docstring)
        op = clean_operator(n_vol, confounds.to_numpy(), sample_mask, tr, low_pass, high_pass)
    except ValueError as exc:
        if "padlen" not in str(exc):
            raise
        # scipy's filtfilt pads by ~3 filter lengths: a series this short cannot be band-passed
        raise InputError(f"{kept} volumes are too few to band-pass ({exc}); set denoise.high_pass and "
                         "denoise.low_pass to null for such short runs", path=str(bold_path)) from None
    # NIfTI data are time-slowest (Fortran order): as (T, X*Y*Z) they are a C-ordered view, so the
    # brain voxels are gathered volume by volume from contiguous memory (data[mask] strides a whole
    # volume per time point, and one 2-D take is ~3x slower than this loop over volumes: 2.3 s vs
    # 0.1 s on a UK Biobank-sized run)
    brain = np.flatnonzero(mask.ravel(order="F"))  # voxel order: x fastest, as in the file
    volumes = data.result().reshape(-1, n_vol, order="F").T  # (T, X*Y*Z) view
    signals = np.empty((n_vol, brain.size), dtype=np.float32)  # (T, V)
    for t in range(n_vol):
        np.take(volumes[t], brain, out=signals[t])
    del volumes, data
    if not np.isfinite(signals).all():
        raise InputError("BOLD has NaN or Inf values inside the brain mask", path=str(bold_path))
    if not signals.any():
        raise InputError("BOLD is all zeros inside the brain mask", path=str(bold_path))
    # The series are centred first: M removes constants, and centring keeps float32 rounding at
    # the scale of the fluctuations rather than of the raw intensities.
    signals -= signals.mean(axis=0, dtype=np.float64).astype(np.float32)
    cleaned = apply_operator(op.astype(np.float32), signals, threads)
    del signals
    # scattered back voxel-major into a C-ordered (X, Y, Z, T_kept) array (each voxel's series
    # contiguous: ~3x faster than time-major, pages of zeros outside the brain never touched, and
    # the measures reshape it to (voxels, T) without a copy)
    rows = np.ravel_multi_index(np.unravel_index(brain, mask.shape, order="F"), mask.shape)
    out = np.zeros((mask.size, cleaned.shape[0]), dtype=np.float32)
    out[rows] = cleaned.T
    del cleaned
    out = out.reshape(mask.shape + (-1,))
    hdr = img.header.copy()
    hdr.set_data_dtype(np.float32)
    hdr["scl_slope"], hdr["scl_inter"] = np.nan, np.nan
    out_img = nib.Nifti1Image(out, img.affine, hdr)

    fd = None
    if conf.exists():
        raw = pd.read_csv(conf, sep="\t", na_values="n/a")
        if "framewise_displacement" in raw:
            fd = float(np.nanmean(raw["framewise_displacement"].to_numpy(dtype=float)))
    voxel = "x".join(f"{z:g}" for z in img.header.get_zooms()[:3])
    qc = dict(n_volumes=n_vol, n_volumes_kept=int(kept), mean_fd_mm=fd, tr_s=tr, voxel_size_mm=voxel,
              confounds=list(confounds.columns), n_confounds=int(confounds.shape[1]))
    return out_img, qc


def clean_operator(n_volumes: int, confounds: np.ndarray | None, sample_mask, t_r: float,
                   low_pass: float | None, high_pass: float | None) -> np.ndarray:
    """nilearn's ``signal.clean`` as a matrix: (T_kept, T) float64 ``M`` with
    ``clean(signals) == M @ signals`` for any (T, V) signals.

    It is ``clean`` applied to the (T, T) identity with rviflow's settings (linear detrend,
    Butterworth band-pass of signals and confounds, censoring, projection out of the z-scored
    confounds, no standardisation of the signals), so every step is nilearn's own.
    """
    from nilearn.signal import clean

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clean(np.eye(n_volumes), confounds=confounds, sample_mask=sample_mask, t_r=t_r,
                     low_pass=low_pass, high_pass=high_pass, detrend=True, standardize=None,
                     standardize_confounds=True, filter="butterworth", butterworth__copy=True)


#: voxels per block of the cleaning product: fixed, so that the result never depends on threads
_BLOCK = 8192


def apply_operator(op: np.ndarray, signals: np.ndarray, threads: int = 1) -> np.ndarray:
    """``op @ signals`` ((T_kept, T) @ (T, V) -> (T_kept, V), float32) in fixed blocks of voxels,
    ``threads`` blocks at a time, each a single-threaded BLAS product: every voxel's result is
    computed the same way whatever the thread count (a per-scan job and a batch job write the same
    bits), while 2 cores still share the work."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    n_vox = signals.shape[1]
    out = np.empty((op.shape[0], n_vox), dtype=np.float32)
    starts = range(0, n_vox, _BLOCK)

    def block(start: int) -> None:
        np.matmul(op, signals[:, start:start + _BLOCK], out=out[:, start:start + _BLOCK])

    with threadpool_limits(1):
        if threads > 1 and len(starts) > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:  # numpy's matmul releases the GIL
                list(pool.map(block, starts))
        else:
            for start in starts:
                block(start)
    return out
