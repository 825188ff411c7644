"""CBF quantification from ASL (Alsop et al. 2015, "ASL white paper"; ASLPrep's conventions).

Single PLD, (P)CASL:  CBF = 6000·λ·ΔM·e^(PLD/T1b) / (2·α·T1b·M0·(1 − e^(−τ/T1b)))
Single PLD, PASL with bolus cut-off (QUIPSS II / Q2TIPS):  CBF = 6000·λ·ΔM·e^(TI/T1b) / (2·α·TI1·M0)
Multi-PLD: the general kinetic model (:mod:`rviflow.measures.cbf.kinetic`) fitted for CBF and ATT, bounded.

CBF in ml/100 g/min, times in s. λ = 0.9; T1 of blood 1.65 s at 3 T, 1.35 s at 1.5 T; α from
LabelingEfficiency, else 0.85 (PCASL), 0.68 (CASL), 0.98 (PASL), × 0.95 per background-suppression
pulse. With 2-D readouts each slice's PLD is PLD + its SliceTiming. M0 is a separate scan, the
included m0scan volumes, a constant (M0Estimate) or the mean control image (M0Type Absent; refused
under background suppression and for FAIR PASL); an M0 acquired with TR < 5 s is divided by
1 − e^(−TR/T1 tissue), multiplied by a configurable scale and smoothed (within the covered brain)
before division.

Conventions (each a :class:`CbfOptions` field, recorded in the sidecar):

- Background suppression and a given LabelingEfficiency: the sidecar's LabelingEfficiency is used
  as the effective α, without the 0.95-per-pulse factor (``bs_with_labeling_efficiency`` False).
  The per-pulse factor is a heuristic for the white-paper default α (Alsop et al. 2015 give α for
  the labelling alone and note that background-suppression inversions lower it); ASLPrep applies
  it only when LabelingEfficiency is absent (aslprep/utils/asl.py, which notes that the factor is
  "not described in any papers"), and BASIL / oxford_asl take a given α as the effective one.
  Following them keeps our CBF equal to ASLPrep's for the same data (asl004: 10.8 % apart
  otherwise). Set it True when the given efficiency is a labelling-plane measurement (e.g.
  phase contrast) that excludes the losses of the suppression pulses.
- M0 repetition time: an M0 with TR < ``m0_tr_limit`` (5 s) is divided by 1 − e^(−TR/T1 tissue);
  the white paper recommends an M0 TR of at least 5 s, where recovery is >= 98 % (T1 1.3 s), and
  the correction (Alsop et al. 2015, p. 113) for shorter TRs, as ASLPrep does
  (aslprep/interfaces/cbf.py). A limit of 0 turns the correction off; a large one applies it at
  any TR (it is exact under mono-exponential recovery, but depends on the assumed tissue T1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from rviflow.io.asl import AslParams
from rviflow.errors import InputError
from rviflow.measures.cbf.kinetic import LAMBDA, att_bounds, fit_multi_pld

T1_BLOOD = {1.5: 1.35, 3.0: 1.65}  #: s, by field strength (T)
DEFAULT_ALPHA = {"PCASL": 0.85, "CASL": 0.68, "PASL": 0.98}
BS_PULSE_EFFICIENCY = 0.95
T1_TISSUE = 1.3  #: s, grey-matter T1 used to correct a short-TR M0 (configurable)
M0_TR_LIMIT = 5.0  #: s, M0 with a shorter TR is corrected for incomplete recovery
CBF_MAX = 250.0  #: ml/100 g/min, upper bound of the multi-PLD fit (above tissue perfusion, even hyperaemic)


class LabelOrderError(InputError):
    """ΔM = control − label has the wrong sign over the brain (label and control swapped)."""


@dataclass
class CbfOptions:
    """Quantification settings (the config's ``cbf`` section, through :func:`cbf_options`).

    The defaults are the published constants; tests/io/test_config.py keeps them equal to the
    config schema's, which is where a run takes them from.
    """

    m0_scale: float = 1.0
    m0_fwhm: float = 5.0
    t1_blood: float | None = None
    t1_tissue: float = T1_TISSUE
    m0_tr_limit: float = M0_TR_LIMIT
    outlier_rejection: bool = True
    outlier_threshold: float = 2.5
    att_range: tuple[float, float] = (0.1, 3.0)
    att_fwhm: float = 6.0  #: mm, in-plane smoothing of ΔM/M0 for the ATT estimate (0 = voxelwise joint fit)
    cbf_max: float = CBF_MAX
    labeling_efficiency: float | None = None  #: overrides the sidecar's LabelingEfficiency
    bs_pulse_efficiency: float = BS_PULSE_EFFICIENCY
    bs_with_labeling_efficiency: bool = False


def cbf_options(cbf: dict) -> dict:
    """:class:`CbfOptions` keyword arguments from the config's ``cbf`` section (0 / "" = from the
    sidecar or the field strength, as the schema documents)."""
    return dict(m0_scale=cbf["m0_scale"], m0_fwhm=cbf["m0_fwhm"], t1_blood=cbf["t1_blood"] or None,
                t1_tissue=cbf["t1_tissue"], m0_tr_limit=cbf["m0_tr_limit"],
                outlier_rejection=cbf["outlier_rejection"], outlier_threshold=cbf["outlier_threshold"],
                att_range=(cbf["att_min"], cbf["att_max"]), att_fwhm=cbf["att_fwhm"], cbf_max=cbf["cbf_max"],
                labeling_efficiency=cbf["labeling_efficiency"] or None, bs_pulse_efficiency=cbf["bs_pulse_efficiency"],
                bs_with_labeling_efficiency=cbf["bs_with_labeling_efficiency"])


@dataclass
class CbfResult:
    cbf: np.ndarray  #: (X, Y, Z) ml/100 g/min
    att: np.ndarray | None  #: (X, Y, Z) s, multi-PLD only
    constants: dict = field(default_factory=dict)
    qc: dict = field(default_factory=dict)
    valid: np.ndarray | None = None  #: (X, Y, Z) bool, voxels with data (see :func:`quantify`)


def t1_blood(field_strength: float, override: float | None = None) -> float:
    """T1 of arterial blood (s) at the field strength (T), or the configured override."""
    if override:
        return float(override)
    for b, t1 in T1_BLOOD.items():
        if abs(field_strength - b) < 0.05:
            return t1
    raise InputError(f"no default blood T1 for MagneticFieldStrength {field_strength} T (known: 1.5, 3); "
                     "set cbf.t1_blood in the config (rviflow cbf: --t1-blood)")


def labeling_efficiency(labeling_type: str, efficiency: float | None = None, bs_pulses: int = 0,
                        pulse_efficiency: float = BS_PULSE_EFFICIENCY, bs_with_given: bool = False) -> float:
    """α: the white-paper default × ``pulse_efficiency`` per background-suppression pulse, or a given
    LabelingEfficiency (× the per-pulse factor too only with ``bs_with_given``; module docstring)."""
    if efficiency and not bs_with_given:
        return float(efficiency)
    alpha = efficiency if efficiency else DEFAULT_ALPHA[labeling_type.upper()]
    return float(alpha) * float(pulse_efficiency) ** int(bs_pulses)


def m0_tr_correction(m0, tr: float | None, t1_tissue: float = T1_TISSUE, limit: float = M0_TR_LIMIT):
    """M0 / (1 − e^(−TR/T1)) when the M0 was acquired with TR < ``limit`` (incomplete recovery)."""
    if tr is None or tr >= limit:
        return m0
    return m0 / (1.0 - np.exp(-tr / t1_tissue))


def slice_pld(pld: float, slice_timing: np.ndarray | None, shape: tuple[int, int, int], axis: int = 2,
              reverse: bool = False) -> np.ndarray:
    """Per-voxel PLD (s): PLD + SliceTiming of the voxel's slice (2-D readouts); PLD everywhere otherwise."""
    out = np.full(shape, float(pld))
    if slice_timing is None:
        return out
    st = np.asarray(slice_timing, dtype=float)
    if st.size != shape[axis]:
        raise InputError(f"field SliceTiming has {st.size} values but the image has {shape[axis]} slices")
    if reverse:
        st = st[::-1]
    view = [1, 1, 1]
    view[axis] = -1
    return out + st.reshape(view)


def cbf_single_pld(delta_m, m0, pld, labeling_type: str, alpha: float, t1b: float, bolus: float,
                   lam: float = LAMBDA) -> np.ndarray:
    """White-paper single-PLD CBF (ml/100 g/min); ``bolus`` = τ ((P)CASL) or TI1 (PASL); pld = TI for PASL.

    Voxels with M0 <= 0 get 0.
    """
    delta_m, m0, pld = (np.asarray(a, dtype=float) for a in (delta_m, m0, pld))
    if labeling_type.upper() == "PASL":
        denom = 2 * alpha * bolus * m0
    else:
        denom = 2 * alpha * t1b * m0 * (1 - np.exp(-bolus / t1b))
    with np.errstate(divide="ignore", invalid="ignore"):
        cbf = 6000.0 * lam * delta_m * np.exp(pld / t1b) / denom
    return np.where(m0 > 0, cbf, 0.0)


def smooth_in_mask(img: np.ndarray, mask: np.ndarray, fwhm_mm: float, voxel_mm) -> np.ndarray:
    """Gaussian smoothing restricted to the mask (normalised convolution: no dark brain edge).

    ``img`` (X, Y, Z) or (X, Y, Z, P) (each 3-D volume smoothed); an infinite voxel size leaves
    that axis unsmoothed.
    """
    if not fwhm_mm:
        return img
    sigma = fwhm_mm / np.sqrt(8 * np.log(2)) / np.asarray(voxel_mm, dtype=float)
    if img.ndim == 4:
        sigma = np.append(sigma, 0.0)
        mask = mask[..., None]
    num = ndimage.gaussian_filter(np.where(mask, img, 0.0), sigma)
    den = ndimage.gaussian_filter(np.broadcast_to(mask, img.shape).astype(float), sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mask & (den > 0), num / den, 0.0)


def m0_image(data: np.ndarray, params: AslParams, mask: np.ndarray, voxel_mm, m0_data: np.ndarray | None = None,
             m0_tr: float | None = None, options: CbfOptions = CbfOptions()) -> tuple[np.ndarray, dict]:
    """The M0 map used for quantification and a record of how it was made.

    ``data`` (X, Y, Z, T) is the ASL series, ``m0_data`` the separate M0 scan (3-D or 4-D, on
    the ASL grid) for M0Type Separate, ``m0_tr`` its RepetitionTimePreparation (None: unknown, the
    short-TR correction is skipped and that is recorded). The M0 is smoothed within the voxels of
    ``mask`` where it is positive (the covered brain: zero-filled slices outside the field of view
    are not blurred into the covered ones) and is 0 elsewhere.
    """
    ctx = np.asarray(params.context)
    info = dict(M0Type=params.m0_type)
    if params.m0_type == "Separate":
        if m0_data is None:
            raise InputError("M0Type is Separate but no M0 scan was given")
        m0 = m0_data.mean(axis=3) if m0_data.ndim == 4 else m0_data.astype(float)
        tr = m0_tr
    elif params.m0_type == "Included":
        sel = ctx == "m0scan"
        m0 = data[..., sel].mean(axis=3)
        tr = float(params.tr_prep[sel][0])
    elif params.m0_type == "Estimate":
        info.update(M0Estimate=params.m0_estimate, M0ScaleFactor=options.m0_scale)
        return np.where(mask, params.m0_estimate * options.m0_scale, 0.0), info
    else:  # Absent: the mean control image stands in for M0
        pasl_type = str(params.sidecar.get("PASLType", "")).upper()
        if params.labeling_type == "PASL" and pasl_type != "PICORE":
            why = ("its control is a slab-selective inversion, not a proton-density image" if pasl_type == "FAIR"
                   else "field PASLType is missing, so the control may be an inverted (FAIR) image")
            raise InputError(f"M0Type is Absent with {pasl_type or 'PASL'}: {why}; provide an M0 scan or M0Estimate")
        if params.background_suppression:
            raise InputError("M0Type is Absent and field BackgroundSuppression is true: the background-suppressed "
                             "control images cannot stand in for M0; provide an M0 scan or M0Estimate")
        sel = ctx == "control"
        if not sel.any():
            raise InputError("M0Type is Absent and field volume_type has no control volume to estimate M0 from")
        m0 = data[..., sel].mean(axis=3)
        tr = float(params.tr_prep[sel][0])
    if m0.shape != data.shape[:3]:
        raise InputError(f"M0 grid {m0.shape} does not match the ASL grid {data.shape[:3]}")
    if not np.isfinite(m0[mask]).all():
        raise InputError(f"M0 has NaN or Inf values in {int((~np.isfinite(m0[mask])).sum())} voxels of the brain mask")
    corrected = tr is not None and tr < options.m0_tr_limit
    m0 = m0_tr_correction(m0, tr, options.t1_tissue, options.m0_tr_limit) * options.m0_scale
    covered = mask & (m0 > 0)
    m0 = smooth_in_mask(m0, covered, options.m0_fwhm, voxel_mm)
    info.update(M0RepetitionTime=tr, M0TRCorrected=bool(corrected), M0TRLimit=options.m0_tr_limit,
                T1Tissue=options.t1_tissue, M0ScaleFactor=options.m0_scale, M0SmoothingFWHM=options.m0_fwhm)
    if tr is None:
        info["M0TRCorrection"] = "skipped: the M0 repetition time is unknown"
    return np.where(covered, m0, 0.0), info


def difference_volumes(data: np.ndarray, params: AslParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ΔM volumes (control − label pairs, then deltam volumes): (N, X, Y, Z), their PLDs and bolus (N,).

    The k-th control is paired with the k-th label of the same PLD (acquisition order).
    """
    ctx = np.asarray(params.context)
    bolus = params.labeling_duration if params.labeling_duration is not None else np.full(len(ctx), params.bolus_ti1)
    vols, plds, bol = [], [], []
    for pld in np.unique(np.round(params.plds, 6)):
        at = np.isclose(params.plds, pld, atol=1e-6)
        ci, li = np.flatnonzero(at & (ctx == "control")), np.flatnonzero(at & (ctx == "label"))
        for c, lab in zip(ci, li):
            vols.append(data[..., c] - data[..., lab])
            plds.append(params.plds[lab])
            bol.append(bolus[lab])
    for d in np.flatnonzero(ctx == "deltam"):
        vols.append(data[..., d])
        plds.append(params.plds[d])
        bol.append(bolus[d])
    if not vols:
        return np.zeros((0,) + data.shape[:3]), np.zeros(0), np.zeros(0)
    return np.stack(vols).astype(float), np.asarray(plds), np.asarray(bol)


def score_reject(vols: np.ndarray, tissues: list[np.ndarray], threshold: float = 2.5) -> np.ndarray:
    """SCORE-like outlier rejection (after Dolui et al. 2017); returns a keep flag per volume.

    ``vols`` (N, V) CBF (or ΔM) volumes over the brain; ``tissues`` boolean (V,) masks, the first
    grey matter. Step 1 drops volumes whose mean in the first tissue lies more than
    ``threshold`` robust SDs (1.4826 × MAD) from the median; step 2 repeatedly drops the volume
    whose removal most lowers the pooled within-tissue variance of the mean image, while it
    does and at least half of the volumes are left.
    """
    n = vols.shape[0]
    keep = np.ones(n, dtype=bool)
    if n < 3 or not tissues[0].any():  # too few volumes or no voxel to judge them by
        return keep
    gm_mean = vols[:, tissues[0]].mean(axis=1)
    med = np.median(gm_mean)
    mad = 1.4826 * np.median(np.abs(gm_mean - med))
    if mad > 0:
        keep &= np.abs(gm_mean - med) <= threshold * mad
    if not any(t.sum() > 1 for t in tissues):  # no within-tissue variance to lower
        return keep

    def pooled_var(img):
        num = sum(t.sum() * img[t].var() for t in tissues if t.sum() > 1)
        return num / sum(t.sum() for t in tissues if t.sum() > 1)

    total = vols[keep].sum(axis=0)
    current = pooled_var(total / keep.sum())
    while keep.sum() > max(2, int(np.ceil(n / 2))):
        k = keep.sum()
        trial = {i: pooled_var((total - vols[i]) / (k - 1)) for i in np.flatnonzero(keep)}
        worst = min(trial, key=trial.get)
        if trial[worst] >= current * (1 - 1e-6):
            break
        keep[worst] = False
        total -= vols[worst]
        current = trial[worst]
    return keep


def check_label_order(wp_cbf: np.ndarray, plds: np.ndarray, tissue: np.ndarray, context,
                      tissue_name: str = "grey matter") -> dict:
    """Refuse ΔM of the wrong sign: label and control swapped (or deltam stored as label − control).

    ``wp_cbf`` (N, V) white-paper CBF of each difference volume (ml/100 g/min), ``plds`` (N,),
    ``tissue`` (V,) bool (grey matter, else the brain). Refused when the median over the tissue of
    the per-voxel mean is negative and so is the tissue median of ΔM at most of the delays: robust
    statistics, so neither a few wild voxels nor the noise-only early delays of a multi-PLD series
    can trip it. Returns the two numbers for the QC.
    """
    vals = wp_cbf[:, tissue] if tissue.any() else wp_cbf
    med = float(np.median(vals.mean(axis=0))) if vals.size else 0.0
    levels = np.unique(np.round(plds, 6))
    neg = float(np.mean([np.median(vals[np.isclose(plds, lv, atol=1e-6)].mean(axis=0)) < 0 for lv in levels])) \
        if vals.size else 0.0
    if med < 0 and neg > 0.5:
        hint = ("label and control look swapped: check the order of volume_type" if {"control", "label"} <= set(context)
                else "deltam / cbf volumes must be control - label: check their sign")
        raise LabelOrderError(f"ΔM is negative at {neg:.0%} of the delays and the median CBF in the "
                              f"{tissue_name} is {med:.1f} ml/100 g/min (negative): "
                              f"{hint}")
    return dict(median_tissue_cbf_check=round(med, 3), fraction_delays_negative=round(neg, 3))


def quantify(data: np.ndarray, params: AslParams, mask: np.ndarray, voxel_mm, m0_data: np.ndarray | None = None,
             m0_tr: float | None = None, options: CbfOptions = CbfOptions(),
             gm_mask: np.ndarray | None = None) -> CbfResult:
    """CBF (and ATT for multi-PLD) of one ASL series.

    Parameters
    ----------
    data : (X, Y, Z, T) ASL series; params : validated sidecar (:func:`rviflow.io.asl.asl_params`)
    mask : (X, Y, Z) bool brain mask; voxel_mm : voxel sizes (mm) for M0 smoothing
    gm_mask : (X, Y, Z) bool, optional: grey matter for the outlier rejection (else the mask)

    Finite input gives a finite map; NaN or Inf in the brain mask (series or M0) is refused with
    an InputError, as one such voxel would otherwise spoil the outlier rejection of every volume.
    ``CbfResult.valid`` marks the voxels with data: in the mask, inside the ASL field of view (a
    time series that is not all zero) and with M0 > 0; CBF is 0 elsewhere and must not be averaged.
    """
    mask = np.asarray(mask, dtype=bool)
    n_bad = int((~np.isfinite(data[mask])).any(axis=-1).sum())
    if n_bad:
        raise InputError(f"{n_bad} voxels in the brain mask have NaN or Inf values in the ASL series")
    t1b = t1_blood(params.field_strength, options.t1_blood)
    given = options.labeling_efficiency or params.labeling_efficiency
    alpha = labeling_efficiency(params.labeling_type, given, params.bs_pulses, options.bs_pulse_efficiency,
                                options.bs_with_labeling_efficiency)
    ctx = np.asarray(params.context)
    constants = dict(ArterialSpinLabelingType=params.labeling_type, BloodBrainPartitionCoefficient=LAMBDA,
                     T1Blood=t1b, LabelingEfficiency=given, LabelingEfficiencyUsed=alpha,
                     LabelingEfficiencySource="option" if options.labeling_efficiency else
                     ("sidecar" if params.labeling_efficiency else "white-paper default"),
                     BackgroundSuppressionNumberPulses=params.bs_pulses,
                     BackgroundSuppressionPulseEfficiency=options.bs_pulse_efficiency,
                     BackgroundSuppressionFactorOnGivenEfficiency=options.bs_with_labeling_efficiency,
                     SliceTimingPLD=params.slice_timing is not None, Units="ml/100g/min")
    covered = mask & (np.abs(data).max(axis=3) > 0)  # an all-zero series: outside the field of view
    tissues = [np.ones(int(covered.sum()), dtype=bool)]
    if gm_mask is not None and (gm_mask & covered).sum() > 1:
        g = np.asarray(gm_mask, bool)[covered]
        tissues = [g, ~g]
    qc = dict(n_volumes=int(len(ctx)))
    if not ({"control", "label"} <= set(ctx) or "deltam" in ctx):  # pre-quantified cbf volumes only
        vols = data[..., ctx == "cbf"].astype(float)
        keep = score_reject(vols[covered].T, tissues, options.outlier_threshold) if options.outlier_rejection \
            else np.ones(vols.shape[3], bool)
        qc.update(volumes_used=int(keep.sum()), volumes_dropped=int((~keep).sum()))
        qc.update(check_label_order(vols[covered][:, keep].T, np.zeros(int(keep.sum())), tissues[0], ctx,
                                    "grey matter" if len(tissues) > 1 else "brain"))
        constants.update(Method="mean of the cbf volumes in the series")
        return CbfResult(np.where(covered, vols[..., keep].mean(axis=3), 0.0), None, constants, qc, covered)
    m0, m0_info = m0_image(data, params, covered, voxel_mm, m0_data, m0_tr, options)
    constants.update(m0_info)
    if "M0TRCorrection" in m0_info:
        qc["m0_tr_unknown"] = True  # the short-TR correction could not be applied (constants say why)
    valid = covered & (m0 > 0)
    if valid.sum() < covered.sum():
        qc["voxels_m0_nonpositive"] = int(covered.sum() - valid.sum())
    if gm_mask is not None and (gm_mask & valid).sum() > 1:
        g = np.asarray(gm_mask, bool)[valid]
        tissues = [g, ~g]
    else:
        tissues = [np.ones(int(valid.sum()), dtype=bool)]
    dm, plds, bolus = difference_volumes(data, params)
    qc["n_difference_volumes"] = int(len(dm))
    if not valid.any():  # nothing covered with a positive M0: an empty map, and the QC says so
        qc.update(volumes_used=0, volumes_dropped=0, voxels_with_data=0)
        return CbfResult(np.zeros(mask.shape), np.zeros(mask.shape) if params.multi_pld else None, constants, qc,
                         valid)
    unpaired = int(abs((ctx == "control").sum() - (ctx == "label").sum()))
    if unpaired:
        qc["unpaired_volumes"] = unpaired  # a control or label without its partner is not used
    m0_in = m0[valid]
    pld_map = slice_pld(0.0, params.slice_timing, mask.shape, params.slice_axis, params.slice_reversed)
    offsets = pld_map[valid]
    # white-paper CBF of every difference volume: the sign check, and the single-PLD estimate
    wp = np.stack([cbf_single_pld(v[valid], m0_in, w + offsets, params.labeling_type, alpha, t1b, b)
                   for v, w, b in zip(dm, plds, bolus)]) if len(dm) else np.zeros((0, int(valid.sum())))
    qc.update(check_label_order(wp, plds, tissues[0], ctx, "grey matter" if len(tissues) > 1 else "brain"))
    if not params.multi_pld:
        keep = score_reject(wp, tissues, options.outlier_threshold) if options.outlier_rejection \
            else np.ones(len(wp), bool)
        cbf = np.zeros(mask.shape)
        cbf[valid] = wp[keep].mean(axis=0)
        constants.update(Method="white paper single-PLD", PostLabelingDelay=float(plds[0]),
                         **({"BolusCutOffDelayTime_TI1": float(bolus[0])} if params.labeling_type == "PASL"
                            else {"LabelingDuration": float(bolus[0])}))
        qc.update(volumes_used=int(keep.sum()), volumes_dropped=int((~keep).sum()))
        return CbfResult(cbf, None, constants, qc, valid)
    # multi-PLD: robust mean per PLD, then the bounded kinetic-model fit
    levels = np.unique(np.round(plds, 6))
    means, taus, dropped = [], [], 0
    for lv in levels:
        sel = np.isclose(plds, lv, atol=1e-6)
        v = dm[sel][:, valid]
        keep = score_reject(v, tissues, options.outlier_threshold) if options.outlier_rejection \
            else np.ones(len(v), bool)
        dropped += int((~keep).sum())
        means.append(v[keep].mean(axis=0))
        taus.append(bolus[sel][0])
    y = np.stack(means, axis=1) / m0_in[:, None]  # (V, P)
    y_att = y
    if options.att_fwhm:  # ATT from the smoothed signal (kinetic.fit_multi_pld); 2-D: never across slices
        # at least 2 voxels FWHM per axis, so that large voxels pool their neighbours too
        vox = np.minimum(np.asarray(voxel_mm, dtype=float), options.att_fwhm / 2)
        if params.slice_timing is not None:
            vox[params.slice_axis] = np.inf
        vol = np.zeros(mask.shape + (len(levels),))
        vol[valid] = y
        y_att = smooth_in_mask(vol, valid, options.att_fwhm, vox)[valid]
    f, att = np.zeros(len(y)), np.zeros(len(y))
    status = np.zeros(len(y), dtype=int)
    fit = dict(n_fallback=0, n_local_att=0, n_clipped_negative=0, n_clipped_high=0)
    for off in np.unique(offsets):  # voxels sharing a slice time share their PLDs
        sel = offsets == off
        f[sel], att[sel], info = fit_multi_pld(y[sel], levels + off, params.labeling_type, np.asarray(taus), alpha,
                                               t1b, options.att_range, lam=LAMBDA, att_data=y_att[sel],
                                               cbf_max=options.cbf_max)
        status[sel] = info["status"]
        for k in fit:
            fit[k] += info[k]
    cbf, att_map = np.zeros(mask.shape), np.zeros(mask.shape)
    cbf[valid], att_map[valid] = f, att
    lo, hi = att_bounds(levels + offsets.min(), params.labeling_type, np.asarray(taus), options.att_range)
    constants.update(Method="general kinetic model (Buxton 1998), bounded least squares: ATT from the "
                            f"in-plane smoothed signal (FWHM {options.att_fwhm} mm) within the range the delays "
                            "identify, CBF linear at that ATT in [0, cbf_max]; voxels whose ATT is not "
                            "identified take the single-PLD estimate from the latest third of the delays",
                     PostLabelingDelay=levels.tolist(), ATTRange=list(options.att_range),
                     ATTSearched=[round(lo, 4), round(hi, 4)], ATTSmoothingFWHM=options.att_fwhm,
                     CBFMax=options.cbf_max,
                     **({"BolusCutOffDelayTime_TI1": float(taus[0])} if params.labeling_type == "PASL"
                        else {"LabelingDuration": [float(t) for t in taus]}))
    qc.update(volumes_used=int(len(dm) - dropped), volumes_dropped=dropped,
              fit_voxels=int(len(y)), fit_att_unidentified=fit["n_fallback"], fit_att_voxelwise=fit["n_local_att"],
              fit_cbf_clipped_negative=fit["n_clipped_negative"], fit_cbf_clipped_high=fit["n_clipped_high"])
    return CbfResult(cbf, att_map, constants, qc, valid)


def cbf_qc(cbf: np.ndarray, brain: np.ndarray, gm: np.ndarray | None = None, valid: np.ndarray | None = None) -> dict:
    """Mean CBF, fraction of negative CBF voxels, spatial CoV (SD / mean), over the voxels with data.

    ``mean_gm_cbf`` over grey matter when ``gm`` is given, else ``mean_brain_cbf`` over the brain
    (named for what it is); ``valid`` (the ASL coverage) restricts every number, and
    ``coverage_fraction`` is the covered share of the brain.
    """
    brain = np.asarray(brain, bool)
    covered = brain if valid is None else brain & np.asarray(valid, bool)
    where = covered if gm is None else (np.asarray(gm, bool) & covered)
    vals = cbf[where]
    mean = float(vals.mean()) if vals.size else float("nan")
    out = {"mean_gm_cbf" if gm is not None else "mean_brain_cbf": round(mean, 3),
           "fraction_negative": round(float((cbf[covered] < 0).mean()), 5) if covered.any() else float("nan"),
           "spatial_cov": round(float(vals.std() / mean), 4) if vals.size and mean else float("nan")}
    if valid is not None:
        out["coverage_fraction"] = round(float(covered.sum() / max(int(brain.sum()), 1)), 4)
    return out


def normalise(cbf: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """Relative CBF: the map ÷ its mean in the reference mask (whole brain, grey matter, cerebellum)."""
    ref = np.asarray(reference, bool)
    vals = cbf[ref & np.isfinite(cbf)]
    if vals.size == 0 or vals.mean() <= 0:
        raise InputError("the reference mask for CBF normalisation has no voxel with positive mean CBF")
    return cbf / vals.mean(), float(vals.mean())
