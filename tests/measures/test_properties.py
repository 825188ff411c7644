"""Property tests (hypothesis): random small arrays, with ties, constant series and NaN, through
ReHo, CBF quantification and parcellation. Finite input never crashes and never gives NaN; NaN
or Inf input has its documented outcome (ReHo and CBF refuse NaN inside the mask with an
InputError and ignore it outside; parcellation leaves non-finite voxels out of the means).

Examples are derandomised (the same ones on every run, no example database), so CI is
deterministic; max_examples is kept small for speed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rviflow.io.asl import asl_params
from rviflow.measures.cbf.quantify import CbfOptions, quantify
from rviflow.errors import InputError
from rviflow.preprocess.parcellate import parcel_means
from rviflow.measures.reho import reho_map
from test_reho import reference_reho

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def grids(draw, min_side=1, max_side=4):
    return tuple(draw(st.integers(min_side, max_side)) for _ in range(3))


@st.composite
def series_and_mask(draw, n_min=3, n_max=10):
    """(X, Y, Z, N) float32 series from a few levels (ties, some constant voxels) or continuous
    values, and a random mask."""
    grid = draw(grids())
    n = draw(st.integers(n_min, n_max))
    if draw(st.booleans()):
        elements = st.integers(0, 3).map(float)
    else:
        elements = st.floats(-1e3, 1e3, allow_nan=False, width=32)
    data = draw(arrays(np.float32, grid + (n,), elements=elements))
    constant = draw(arrays(bool, grid))
    data[constant] = 1.0
    return data, draw(arrays(bool, grid))


# ------------------------------------------------------------------------------------ ReHo
@PROPERTY
@given(series_and_mask(), st.sampled_from([7, 19, 27]), st.booleans(), st.integers(1, 3), st.integers(1, 5))
def test_reho_finite_input(sm, neighbourhood, tie_correction, slab, chunk):
    """Finite series: W finite in [0, 1], 0 off the used mask, constant series left out, and equal
    to the plain voxel-by-voxel Kendall's W (tests/measures/test_reho.py) whatever the slab / chunk sizes."""
    data, mask = sm
    w, used = reho_map(data, mask, neighbourhood, tie_correction, chunk_voxels=chunk, slab=slab, n_threads=2)
    assert np.isfinite(w).all() and (w >= 0).all() and (w <= 1).all()
    assert (w[~used] == 0).all()
    varying = data.max(axis=3) > data.min(axis=3)
    assert np.array_equal(used, mask & varying)
    ref, ref_used = reference_reho(data.astype(np.float64), mask, neighbourhood, tie_correction)
    assert np.array_equal(used, ref_used)
    np.testing.assert_allclose(w, np.clip(ref, 0, 1), atol=2e-6)


@PROPERTY
@given(series_and_mask(), st.sampled_from([np.nan, np.inf, -np.inf]), st.data())
def test_reho_non_finite_input(sm, bad, draw):
    """NaN / Inf: refused inside the mask (InputError), ignored outside it."""
    data, mask = sm
    v = tuple(draw.draw(st.integers(0, s - 1)) for s in data.shape[:3])
    data[v + (draw.draw(st.integers(0, data.shape[3] - 1)),)] = bad
    if mask[v]:
        with pytest.raises(InputError, match="NaN or Inf"):
            reho_map(data, mask)
    else:
        w, used = reho_map(data, mask)
        assert np.isfinite(w).all() and not used[v]


# ------------------------------------------------------------------------------------- CBF
#: (sidecar fields, aslcontext) of the protocols drawn: single-PLD PCASL with an included M0,
#: PASL QUIPSS II with an M0 estimate, multi-PLD PCASL without M0 (mean control), deltam only
PROTOCOLS = {
    "pcasl": (dict(ArterialSpinLabelingType="PCASL", PostLabelingDelay=1.8, LabelingDuration=1.8, M0Type="Included"),
              ["m0scan"] + ["control", "label"] * 3),
    "pasl": (dict(ArterialSpinLabelingType="PASL", PostLabelingDelay=1.8, BolusCutOffFlag=True,
                  BolusCutOffTechnique="QUIPSSII", BolusCutOffDelayTime=0.8, M0Type="Estimate", M0Estimate=800.0),
             ["control", "label"] * 3),
    "multipld": (dict(ArterialSpinLabelingType="PCASL", PostLabelingDelay=[0.5, 0.5, 1.5, 1.5, 2.5, 2.5],
                      LabelingDuration=1.8, M0Type="Absent"), ["control", "label"] * 3),
    "deltam": (dict(ArterialSpinLabelingType="PCASL", PostLabelingDelay=1.8, LabelingDuration=1.8, M0Type="Estimate",
                    M0Estimate=800.0), ["deltam"] * 4),
}


def _params(protocol):
    meta, context = PROTOCOLS[protocol]
    meta = dict(meta, BackgroundSuppression=False, RepetitionTimePreparation=4.0, MagneticFieldStrength=3)
    return asl_params(meta, context)


@st.composite
def asl_series(draw):
    """(protocol, (X, Y, Z, T) series, brain mask): values on a few levels (ties, constant voxels,
    zero or negative M0) or continuous, in the range of raw ASL signal."""
    protocol = draw(st.sampled_from(sorted(PROTOCOLS)))
    grid = draw(grids())
    n = len(PROTOCOLS[protocol][1])
    if draw(st.booleans()):
        elements = st.sampled_from([0.0, 1.0, 500.0, 600.0])
    else:
        elements = st.floats(-50, 1000, allow_nan=False, width=32)
    data = draw(arrays(np.float32, grid + (n,), elements=elements))
    return protocol, data, draw(arrays(bool, grid))


@PROPERTY
@given(asl_series(), st.sampled_from([0.0, 5.0]), st.booleans())
def test_cbf_finite_input(series, fwhm, reject):
    """Finite ASL: CBF (and ATT) finite everywhere, 0 outside the brain mask, or (ΔM negative over
    the brain) refused as a label/control swap, one InputError."""
    from rviflow.measures.cbf.quantify import LabelOrderError

    protocol, data, mask = series
    try:
        res = quantify(data, _params(protocol), mask, (4.0, 4.0, 4.0),
                       options=CbfOptions(m0_fwhm=fwhm, outlier_rejection=reject))
    except LabelOrderError:
        return
    assert res.cbf.shape == mask.shape and np.isfinite(res.cbf).all() and (res.cbf[~mask] == 0).all()
    if res.att is not None:
        assert np.isfinite(res.att).all()


@PROPERTY
@given(asl_series(), st.sampled_from([np.nan, np.inf]), st.data())
def test_cbf_non_finite_input(series, bad, draw):
    """NaN / Inf in the ASL series: refused inside the brain mask, ignored outside it."""
    protocol, data, mask = series
    v = tuple(draw.draw(st.integers(0, s - 1)) for s in data.shape[:3])
    data[v + (draw.draw(st.integers(0, data.shape[3] - 1)),)] = bad
    if mask[v]:
        with pytest.raises(InputError, match="NaN or Inf"):
            quantify(data, _params(protocol), mask, (4.0, 4.0, 4.0))
    else:
        from rviflow.measures.cbf.quantify import LabelOrderError

        try:
            res = quantify(data, _params(protocol), mask, (4.0, 4.0, 4.0))
        except LabelOrderError:  # random ΔM negative over the brain: refused as a swap, also fine
            return
        assert np.isfinite(res.cbf).all()


# ---------------------------------------------------------------------------- parcellation
@PROPERTY
@given(st.data())
def test_parcel_means(draw):
    """Regional means equal the plain mean over each region's valid, finite voxels; a region
    without such voxels is NaN with count 0; NaN / Inf voxels are left out, never spread."""
    grid = draw.draw(grids())
    labels = draw.draw(arrays(np.int32, grid, elements=st.integers(0, 5)))
    finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)
    data = draw.draw(arrays(np.float32, grid, elements=st.one_of(finite, st.sampled_from([np.nan, np.inf]))
                            if draw.draw(st.booleans()) else finite))
    valid = draw.draw(st.one_of(st.none(), arrays(bool, grid)))
    table = pd.DataFrame({"index": [1, 2, 3, 4, 6], "name": ["a", "b", "c", "d", "absent"]})
    means, counts = parcel_means(data, labels, table, valid)
    use = np.isfinite(data) & (True if valid is None else valid)
    for idx, name in zip(table["index"], table["name"]):
        sel = use & (labels == idx)
        assert counts[name] == sel.sum()
        if sel.any():
            assert np.isfinite(means[name])
            np.testing.assert_allclose(means[name], data[sel].astype(np.float64).mean(), rtol=1e-9, atol=1e-9)
        else:
            assert np.isnan(means[name])
