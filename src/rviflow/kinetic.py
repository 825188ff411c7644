"""The ASL general kinetic model (Buxton et al. 1998) and its vectorised multi-PLD fit.

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


def _best_f(g: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares f for y ≈ f·g (per row) and its residual sum of squares; g, y (..., P)."""
    gy = (g * y).sum(-1)
    gg = np.maximum((g * g).sum(-1), 1e-30)
    return gy / gg, (y * y).sum(-1) - gy * gy / gg


def fit_multi_pld(dm_over_m0: np.ndarray, plds: np.ndarray, labeling_type: str, bolus, alpha: float, t1b: float,
                  att_range: tuple[float, float] = (0.1, 3.0), grid_step: float = 0.01, lam: float = LAMBDA,
                  iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares CBF and ATT of every voxel at once.

    The model is linear in CBF, so CBF is profiled out in closed form (variable projection); ATT
    is found by a grid search over ``att_range`` (all voxels × all grid points as one matrix
    product) refined by a vectorised golden-section search between the neighbouring grid points.

    Parameters
    ----------
    dm_over_m0 : (V, P) ΔM / M0 per voxel and PLD
    plds : (P,) s; bolus : float or (P,) s

    Returns
    -------
    cbf : (V,) ml/100 g/min;  att : (V,) s
    """
    y = np.asarray(dm_over_m0, dtype=float)
    grid = np.arange(att_range[0], att_range[1] + grid_step / 2, grid_step)
    unit = kinetic_signal(6000.0, grid, plds, labeling_type, bolus, alpha, t1b, lam=lam) / 6000.0  # (A, P) per f=1/6000
    gy = y @ unit.T  # (V, A)
    gg = np.maximum((unit * unit).sum(1), 1e-30)
    best = np.argmax(np.sign(gy) * gy * gy / gg, axis=1)  # least squares, preferring CBF > 0
    lo = grid[np.maximum(best - 1, 0)]
    hi = grid[np.minimum(best + 1, len(grid) - 1)]

    def ssr(att):
        g = kinetic_signal(6000.0, att, plds, labeling_type, bolus, alpha, t1b, lam=lam) / 6000.0
        return _best_f(g, y)[1]

    r = (np.sqrt(5) - 1) / 2
    for _ in range(iterations):
        c, d = hi - r * (hi - lo), lo + r * (hi - lo)
        left = ssr(c) < ssr(d)
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
    att = (lo + hi) / 2
    g = kinetic_signal(6000.0, att, plds, labeling_type, bolus, alpha, t1b, lam=lam) / 6000.0
    f, _ = _best_f(g, y)
    return f, att
