"""The ASL general kinetic model (Buxton et al. 1998) and its vectorised, bounded multi-PLD fit.

Single compartment, tissue T1 taken equal to blood T1 and instantaneous exchange, as in the ASL
white paper (Alsop et al. 2015), so that for PLD >= ATT the model equals the white-paper
single-PLD equations exactly. CBF ``f`` is in ml/100 g/min (6000 × ml/g/s), times in s.

(P)CASL, labelling duration tau, post-labelling delay w, arterial transit time ATT:

    dM/M0 = 2 α f T1b / λ · e^(−ATT/T1b) · (e^(−max(w − ATT, 0)/T1b) − e^(−max(tau + w − ATT, 0)/T1b))

PASL with bolus cut-off TI1, inversion time TI:

    dM/M0 = 2 α f · clip(TI − ATT, 0, TI1) · e^(−TI/T1b) / λ
"""

from __future__ import annotations

import numpy as np

LAMBDA = 0.9  #: blood-brain partition coefficient (ml/g), white paper


def kinetic_signal(cbf, att, plds, labeling_type: str, bolus: np.ndarray | float, alpha: float, t1b: float,
                   m0=1.0, lam: float = LAMBDA) -> np.ndarray:
    """Forward model: ΔM for each PLD (or TI).

    Parameters
    ----------
    cbf, att : arrays of shape (...) (ml/100 g/min, s)
    plds : array (P,) or (..., P)
        Post-labelling delays ((P)CASL) or inversion times TI (PASL), s.
    bolus : float or (P,)
        Labelling duration tau ((P)CASL) or TI1 (PASL), s.
    m0 : float or array (...)

    Returns
    -------
    (..., P) ΔM in the units of ``m0``.
    """
    f = np.asarray(cbf, dtype=float)[..., None] / 6000.0
    att = np.asarray(att, dtype=float)[..., None]
    m0 = np.asarray(m0, dtype=float)[..., None]
    w = np.asarray(plds, dtype=float)
    bolus = np.asarray(bolus, dtype=float)
    if labeling_type.upper() == "PASL":
        dur = np.clip(w - att, 0.0, bolus)
        return 2 * alpha * m0 * f * dur * np.exp(-w / t1b) / lam
    rise = np.exp(-np.maximum(w - att, 0.0) / t1b) - np.exp(-np.maximum(bolus + w - att, 0.0) / t1b)
    return 2 * alpha * m0 * f * t1b / lam * np.exp(-att / t1b) * rise


def att_bounds(plds, labeling_type: str, bolus, att_range: tuple[float, float] = (0.1, 3.0)) -> tuple[float, float]:
    """The transit times (s) the sampled delays can identify, within ``att_range``.

    The upper bound is the latest arrival for which the last sample is still on the plateau
    (PLD >= ATT for (P)CASL, TI >= ATT + TI1 for PASL), so the model signal never vanishes at every
    sample and CBF = Σgy/Σg² stays well conditioned; arrival before the first sample (ATT below
    the shortest PLD, or below the shortest TI − TI1) leaves every sample on the plateau, so that
    range is not searched either. ASLPrep limits its transit-time search to [min PLD, max PLD] in
    the same way (Dai et al. 2012, weighted-delay method).
    """
    w = np.asarray(plds, dtype=float)
    b = np.broadcast_to(np.asarray(bolus, dtype=float), w.shape)
    if labeling_type.upper() == "PASL":
        lo, hi = float((w - b).min()), float((w - b).max())
    else:
        lo, hi = float(w.min()), float(w.max())
    lo, hi = max(att_range[0], lo, 0.0), min(att_range[1], hi)
    return lo, max(hi, lo)


#: fit status per voxel (:func:`fit_multi_pld`)
FIT_OK, FIT_FALLBACK = 0, 1


def _late_pld_cbf(y: np.ndarray, plds, labeling_type, bolus, alpha, t1b, lam) -> np.ndarray:
    """Single-PLD (white-paper) CBF from the latest third of the delays, least squares over them.

    On the plateau (ATT <= PLD, or ATT + TI1 <= TI) the model does not depend on ATT, so this is
    the estimate the white paper makes from one long PLD; it is the fallback for voxels whose
    transit time the samples cannot identify.
    """
    w = np.asarray(plds, dtype=float)
    order = np.argsort(w)
    late = order[-max(1, int(np.ceil(len(w) / 3))):]
    b = np.broadcast_to(np.asarray(bolus, dtype=float), w.shape)[late]
    g = kinetic_signal(6000.0, 0.0, w[late], labeling_type, b, alpha, t1b, lam=lam) / 6000.0  # ATT 0: plateau
    return (y[:, late] @ g) / float(g @ g)


def _search_att(ya: np.ndarray, unit, grid: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ATT per row of ``ya`` (V, P) among the transit times giving a positive CBF:
    grid search (one matrix product), then golden-section refinement between the neighbouring
    grid points. Returns ATT (V,) and whether any positive-CBF transit time exists (V,) bool."""
    u = unit(grid)  # (A, P); never all-zero: the last sample is on the plateau for every grid ATT
    gy = ya @ u.T  # (V, A)
    gg = (u * u).sum(1)
    score = np.where(gy > 0, gy * gy / gg, -np.inf)
    best = np.argmax(score, axis=1)
    identified = np.isfinite(score[np.arange(len(ya)), best])
    lo = grid[np.maximum(best - 1, 0)]
    hi = grid[np.minimum(best + 1, len(grid) - 1)]

    def ssr(att):
        g = unit(att)
        gy_, gg_ = (g * ya).sum(-1), (g * g).sum(-1)
        return np.where(gy_ > 0, (ya * ya).sum(-1) - gy_ * gy_ / gg_, np.inf)

    r = (np.sqrt(5) - 1) / 2
    for _ in range(iterations if len(grid) > 1 else 0):
        c, d = hi - r * (hi - lo), lo + r * (hi - lo)
        left = ssr(c) < ssr(d)
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
    return (lo + hi) / 2, identified


def _fit_at(y: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear least-squares CBF (per unit of g) and residual sum of squares; y, g (V, P)."""
    gy, gg = (g * y).sum(-1), (g * g).sum(-1)
    return gy / gg, (y * y).sum(-1) - gy * gy / gg


def fit_multi_pld(dm_over_m0: np.ndarray, plds: np.ndarray, labeling_type: str, bolus, alpha: float, t1b: float,
                  att_range: tuple[float, float] = (0.1, 3.0), grid_step: float = 0.01, lam: float = LAMBDA,
                  iterations: int = 40, att_data: np.ndarray | None = None,
                  cbf_max: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Bounded least-squares CBF and ATT of every voxel at once.

    The model is linear in CBF, so CBF is profiled out in closed form (variable projection); ATT
    is found by a grid search over the identifiable range (:func:`att_bounds` within
    ``att_range``; all voxels × all grid points as one matrix product) refined by a vectorised
    golden-section search between the neighbouring grid points, among the transit times that give
    a positive CBF. ``att_data`` (same shape as ``dm_over_m0``, e.g. the spatially smoothed
    signal) is what ATT is estimated from; CBF is then the linear least-squares fit of the
    unsmoothed signal at that ATT. Estimating the non-linear parameter from smoothed data removes
    most of the low-SNR bias of the joint voxelwise fit, which picks the ATT that best fits the
    noise (a transit time spatially smoother than CBF, as in BASIL's spatial prior; Chappell et
    al. 2009). A voxel keeps its own (joint-fit) ATT only where that fits significantly better
    (residual drop above the 99.9 % point of χ²(1) × the noise variance, itself the median joint
    residual / the χ²(P−2) median) and is well conditioned (CBF standard error at most twice the
    smoothed-ATT one): real transit-time edges (grey/white matter) stay sharp in clean data,
    while noise alone rarely switches a voxel.

    Voxels whose ATT the data cannot identify (no transit time gives a positive CBF, or the best
    one is the latest identifiable: arrival at or after the last sample) fall back to the
    single-PLD estimate from the late delays (:func:`_late_pld_cbf`). CBF is finally kept within
    [0, ``cbf_max``].

    Parameters
    ----------
    dm_over_m0 : (V, P) ΔM / M0 per voxel and PLD
    plds : (P,) s; bolus : float or (P,) s
    cbf_max : ml/100 g/min, upper bound (None: none)

    Returns
    -------
    cbf : (V,) ml/100 g/min;  att : (V,) s;  info : dict with ``status`` (V,) int (FIT_OK or
    FIT_FALLBACK), counts ``n_fallback``, ``n_local_att`` (voxels keeping their own ATT),
    ``n_clipped_negative``, ``n_clipped_high`` and the searched ``att_bounds``.
    """
    y = np.asarray(dm_over_m0, dtype=float)
    lo, hi = att_bounds(plds, labeling_type, bolus, att_range)
    grid = np.arange(lo, hi + grid_step / 2, grid_step) if hi > lo else np.array([lo])
    hi = float(grid[-1])

    def unit(att):  # model per unit CBF (f = 1/6000 ml/g/s), (..., P)
        return kinetic_signal(6000.0, att, plds, labeling_type, bolus, alpha, t1b, lam=lam) / 6000.0

    att, identified = _search_att(y, unit, grid, iterations)  # the joint voxelwise fit
    f, ssr = _fit_at(y, unit(att))
    n_p = y.shape[1]
    n_local = 0
    if att_data is not None and n_p > 2:
        # ATT from the smoothed signal, unless the voxel's own ATT fits significantly better: by
        # more than the 95 % point of chi2(1) times the noise variance, estimated robustly from the
        # joint fit's residuals (median over voxels of SSR / chi2(P-2) median)
        from scipy.stats import chi2

        att_s, ident_s = _search_att(np.asarray(att_data, dtype=float), unit, grid, iterations)
        f_s, ssr_s = _fit_at(y, unit(att_s))
        sigma2 = float(np.median(ssr[identified])) / chi2.median(n_p - 2) if identified.any() else np.inf
        g_v, g_s = unit(att), unit(att_s)
        well_conditioned = (g_v * g_v).sum(-1) >= (g_s * g_s).sum(-1) / 4  # CBF SE at most 2x the smoothed one's
        local = identified & ident_s & well_conditioned & (ssr_s - ssr > chi2.ppf(0.999, 1) * sigma2)
        n_local = int(local.sum())
        att, f, identified = np.where(local, att, att_s), np.where(local, f, f_s), ident_s
    fallback = ~identified | ((att >= hi - grid_step) & (len(grid) > 1))
    if fallback.any():
        f = np.where(fallback, _late_pld_cbf(y, plds, labeling_type, bolus, alpha, t1b, lam), f)
        att = np.where(fallback, hi, att)
    info = dict(status=np.where(fallback, FIT_FALLBACK, FIT_OK), n_fallback=int(fallback.sum()), n_local_att=n_local,
                n_clipped_negative=int((f < 0).sum()),
                n_clipped_high=int((f > cbf_max).sum()) if cbf_max is not None else 0, att_bounds=(lo, hi))
    f = np.clip(f, 0.0, cbf_max)
    return f, att, info
