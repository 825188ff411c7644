"""ALFF and fALFF: amplitude of low-frequency fluctuations of each voxel's BOLD series.

Definitions (Zang et al. 2007, Brain Dev 29:83-91; Zou et al. 2008, J Neurosci Methods
172:137-141), as DPABI's ``y_alff_falff.m`` computes them (without its zero-padding):

* the input is the confound-regressed but **not** band-passed series ``x`` (N volumes, TR s);
  its mean is removed and it is transformed along time by one real FFT;
* the one-sided amplitude spectrum is ``A_k = 2 |X_k| / N`` at ``f_k = k / (N TR)``,
  k = 1 .. floor(N/2) (the DC term is left out);
* ALFF = mean of ``A_k`` over the band ``band[0] <= f_k <= band[1]`` (default 0.01-0.08 Hz);
* fALFF = sum of ``A_k`` in the band / sum of ``A_k`` over all k = 1 .. floor(N/2): a ratio
  in [0, 1] that the series' scale cancels from;
* mALFF / zALFF (and mfALFF / zfALFF): ÷ mean in the mask and (value - mean) / SD in the mask,
  as DPARSF derives them and as :func:`rviflow.measures.normalise.normalise_in_mask` does for ReHo.

XCP-D (``xcp_d.utils.restingstate.compute_alff``) takes ``2 * mean(sqrt(periodogram))``
with scipy's one-sided ``scaling="spectrum"`` periodogram, i.e. ``sqrt(2)`` times our ALFF
over the same bins; C-PAC takes the SD of the band-passed series (Parseval: proportional to the
root-mean-square of the same amplitudes). The maps differ by scale only in the first case, and
mALFF / zALFF are scale-free, so they agree; tests/measures/test_alff.py checks both relations.

We write the FFT ourselves (numpy, one ``rfft`` over a chunk of voxels at a time) because nilearn
has no ALFF and XCP-D loops over voxels in Python.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rviflow.errors import InputError
from rviflow.measures.normalise import normalise_in_mask

#: default low-frequency band (Hz), as Zang 2007 / DPABI / XCP-D
DEFAULT_BAND = (0.01, 0.08)


def amplitude_spectrum(series: np.ndarray, tr: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided amplitude spectrum of each row of ``series`` (V, N): frequencies (K,) in Hz
    and amplitudes (V, K) in the series' units, K = floor(N/2), DC left out.

    ``A_k = 2 |X_k| / N`` with ``X = rfft(x - mean(x))`` along time.
    """
    x = np.asarray(series, dtype=np.float64)
    n = x.shape[-1]
    spec = np.fft.rfft(x - x.mean(axis=-1, keepdims=True), axis=-1)[..., 1: n // 2 + 1]
    freqs = np.fft.rfftfreq(n, d=tr)[1: n // 2 + 1]
    return freqs, np.abs(spec) * (2.0 / n)


def band_bins(n_volumes: int, tr: float, band: tuple[float, float] = DEFAULT_BAND) -> np.ndarray:
    """Boolean (K,) selector of the amplitude-spectrum bins inside ``band`` (Hz, inclusive).

    Raises InputError when the band holds no bin (a run too short or TR too long for it).
    """
    if not tr > 0:
        raise InputError(f"repetition time must be > 0 s, got {tr}")
    lo, hi = band
    if not 0 <= lo < hi:
        raise InputError(f"ALFF band must be 0 <= low < high Hz, got {band}")
    freqs = np.fft.rfftfreq(n_volumes, d=tr)[1: n_volumes // 2 + 1]
    # a tolerance so that a bin exactly on an edge (e.g. 0.01 Hz) counts despite rounding
    eps = 1e-9 * max(hi, 1.0)
    sel = (freqs >= lo - eps) & (freqs <= hi + eps)
    if not sel.any():
        raise InputError(f"a run of {n_volumes} volumes at TR {tr:g} s has no frequency in {lo:g}-{hi:g} Hz "
                         f"(resolution {1 / (n_volumes * tr):.4g} Hz); ALFF needs a longer run")
    return sel


def alff_falff(series: np.ndarray, tr: float, band: tuple[float, float] = DEFAULT_BAND,
               chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """ALFF and fALFF of each row of ``series`` (V, N volumes), TR in s, band in Hz.

    Returns two (V,) float64 arrays: ALFF in the series' units (mean band amplitude), fALFF a
    ratio in [0, 1]. A constant row gets 0 for both. Rows are transformed ``chunk`` at a time
    to bound memory (one complex (chunk, N/2) array).
    """
    x = np.asarray(series)
    if x.ndim != 2:
        raise InputError(f"ALFF needs a (voxels, volumes) array, got shape {x.shape}")
    n_vox, n = x.shape
    sel = band_bins(n, tr, band)
    alff = np.zeros(n_vox)
    falff = np.zeros(n_vox)
    for start in range(0, n_vox, chunk):
        _, amp = amplitude_spectrum(x[start: start + chunk], tr)
        in_band = amp[:, sel].sum(axis=1)
        total = amp.sum(axis=1)
        alff[start: start + chunk] = in_band / sel.sum()
        ok = total > 0
        falff[start: start + chunk][ok] = in_band[ok] / total[ok]
    return alff, falff


def alff_map(data: np.ndarray, mask: np.ndarray, tr: float, band: tuple[float, float] = DEFAULT_BAND,
             chunk: int = 4096) -> dict[str, np.ndarray]:
    """ALFF family of a 4-D run ``data`` (X, Y, Z, N) inside boolean ``mask`` (X, Y, Z).

    Returns {"alff", "malff", "zalff", "falff", "mfalff", "zfalff"}: (X, Y, Z) float32 maps,
    0 outside the mask; ALFF in the data's units, fALFF a ratio in [0, 1].
    """
    if data.ndim != 4:
        raise InputError(f"ALFF needs a 4-D time series, got {data.ndim} dimensions")
    if mask.shape != data.shape[:3]:
        raise InputError(f"mask grid {mask.shape} differs from the BOLD grid {data.shape[:3]}")
    alff_v, falff_v = alff_falff(data[mask], tr, band, chunk)
    out = {}
    for name, vals in (("alff", alff_v), ("falff", falff_v)):
        full = np.zeros(mask.shape, dtype=np.float32)
        full[mask] = vals
        out[name] = full
        out["m" + name], out["z" + name] = normalise_in_mask(full, mask, {"alff": "ALFF", "falff": "fALFF"}[name])
    return out


def compute_alff(bold_file: str, mask_file: str, outputs: dict[str, str], threads: int = 1,
                 band: tuple[float, float] | list[float] = DEFAULT_BAND, chunk: int = 4096) -> dict:
    """One scan's ALFF family (the registry's ``compute`` for alff / falff).

    Reads the confound-regressed, not band-passed BOLD (TR from its header or sidecar) and its
    mask; writes ``outputs`` alff, malff, zalff, falff, mfalff, zfalff (float32 NIfTI) and mask
    (voxels with a non-constant series). ``threads`` is unused: one FFT per chunk is already
    memory-bound. Returns the sidecar's Parameters and QC.
    """
    import nibabel as nib

    from rviflow.io.bids import read_json, save_nifti
    from rviflow.io.nifti import load_4d, load_mask, read_data
    from rviflow.preprocess.denoise import repetition_time

    img = load_4d(bold_file)
    mask = load_mask(mask_file, img.shape, img.affine)
    tr = repetition_time(bold_file, img)
    # censored volumes are dropped from the series: its FFT would treat the gaps as contiguous
    side = Path(str(bold_file).replace(".nii.gz", ".json").replace(".nii", ".json"))  # .nii: a temporary series
    qc_in = read_json(side).get("QC", {}) if side.exists() else {}
    if qc_in.get("n_volumes_kept", 0) < qc_in.get("n_volumes", 0):
        raise InputError(f"{qc_in['n_volumes'] - qc_in['n_volumes_kept']} volumes were censored (denoise.scrub); "
                         f"ALFF needs the uncensored series", path=str(bold_file))
    data = read_data(img, bold_file)
    used = mask & (data.std(axis=3) > 0)
    maps = alff_map(data, used, tr, tuple(band), chunk)
    hdr = img.header.copy()
    hdr.set_data_shape(img.shape[:3])
    hdr.set_data_dtype(np.float32)
    for key, arr in maps.items():
        save_nifti(nib.Nifti1Image(arr, img.affine, hdr), outputs[key])
    save_nifti(nib.Nifti1Image(used.astype(np.uint8), img.affine), outputs["mask"])
    qc = dict(n_voxels_mask=int(mask.sum()), n_voxels_zero_variance=int(mask.sum() - used.sum()),
              mean_alff=float(maps["alff"][used].mean()), mean_falff=float(maps["falff"][used].mean()),
              n_timepoints=int(img.shape[3]), n_band_bins=int(band_bins(img.shape[3], tr, tuple(band)).sum()))
    return dict(Parameters=dict(band_hz=list(band), repetition_time_s=tr,
                                amplitude="2|FFT|/N of the mean-removed series, DC left out"), QC=qc)
