"""m- and z-maps of a voxel measure, as DPARSF / DPABI derive mReHo, mALFF, zALFF, ...

One definition for every measure: the m-map divides by the mean inside the mask, the z-map
standardises by the mean and sample SD there (ddof = 1, as DPABI's ``std``).
"""

from __future__ import annotations

import numpy as np

from rviflow.errors import InputError


def normalise_in_mask(values: np.ndarray, mask: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """m-map (÷ mean in mask) and z-map ((value - mean) / SD in mask) of a (X, Y, Z) map.

    ``what`` names the measure in the error. Returns two (X, Y, Z) float32 maps, 0 outside
    ``mask``; a map constant inside the mask raises InputError (no SD to divide by).
    """
    vals = values[mask].astype(np.float64)
    mean = vals.mean() if vals.size else 0.0
    sd = vals.std(ddof=1) if vals.size > 1 else 0.0
    if mean <= 0 or sd <= 0:
        raise InputError(f"{what} map is constant inside the mask; cannot normalise it")
    m = np.zeros(values.shape, dtype=np.float32)
    z = np.zeros(values.shape, dtype=np.float32)
    m[mask] = vals / mean
    z[mask] = (vals - mean) / sd
    return m, z
