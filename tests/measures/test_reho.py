"""Tests of rviflow.measures.reho against plain references written in this file.

The main reference, ``reference_reho``, is AFNI 3dReHo's definition computed voxel by voxel:
loops over voxels and neighbour offsets, ``scipy.stats.rankdata`` average ranks, tie terms
from ``np.unique`` counts and the tie-corrected Kendall W formula. Other tests use a hand
computation, a property of W (identical series concord perfectly) or the stdlib
``statistics`` module.
"""

from __future__ import annotations

import itertools
import statistics

import numpy as np
import pytest
from scipy.stats import rankdata

from rviflow.errors import InputError
from rviflow.measures.normalise import normalise_in_mask
from rviflow.measures.reho import neighbourhood_sum, rank_series, reho_map

MAX_SQ_LEN = {7: 1, 19: 2, 27: 3}


def offsets(neighbourhood: int) -> list[tuple[int, int, int]]:
    """Offsets with squared length <= 1/2/3, the centre included (AFNI's definition)."""
    return [
        o
        for o in itertools.product((-1, 0, 1), repeat=3)
        if sum(c * c for c in o) <= MAX_SQ_LEN[neighbourhood]
    ]


def tie_term(series: np.ndarray) -> float:
    """sum over groups of tied values of (t^3 - t)."""
    _, counts = np.unique(series, return_counts=True)
    return float(np.sum(counts.astype(float) ** 3 - counts))


def reference_reho(data, mask, neighbourhood, tie_correction=True):
    """Kendall's W voxel by voxel, as AFNI 3dReHo defines it; constant series leave the mask."""
    grid, n = data.shape[:3], data.shape[3]
    used = np.zeros(grid, dtype=bool)
    ranks = np.zeros(data.shape)
    ties = np.zeros(grid)
    for v in itertools.product(*map(range, grid)):
        if mask[v] and data[v].max() > data[v].min():
            used[v] = True
            ranks[v] = rankdata(data[v])
            ties[v] = tie_term(data[v])
    w = np.zeros(grid)
    for v in itertools.product(*map(range, grid)):
        if not used[v]:
            continue
        members = []
        for o in offsets(neighbourhood):
            u = tuple(a + b for a, b in zip(v, o))
            if all(0 <= c < g for c, g in zip(u, grid)) and used[u]:
                members.append(u)
        m = len(members)
        r = sum(ranks[u] for u in members)
        num = 12 * np.sum(r**2) - 3 * m**2 * n * (n + 1) ** 2
        den = m**2 * n * (n**2 - 1)
        if tie_correction:
            den -= m * sum(ties[u] for u in members)
        w[v] = num / den if den != 0 else 0.0
    return w, used


def ragged_data(rng, grid, n, levels=4, p_mask=0.65):
    """Integer series with many ties, a ragged mask touching every face, a few constant voxels."""
    data = rng.integers(0, levels, size=grid + (n,)).astype(np.float32)
    mask = rng.random(grid) < p_mask
    for corner in itertools.product(*[(0, g - 1) for g in grid]):
        mask[corner] = True  # voxels at the volume corners, edges and faces
    flat = np.flatnonzero(mask)
    for i in rng.choice(flat, size=3, replace=False):
        data[np.unravel_index(i, grid)] = 2.0  # zero variance: must leave the mask
    return data, mask


# ---------------------------------------------------------------- rank_series
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.float64])
def test_rank_series_matches_rankdata(dtype):
    """Reference: scipy.stats.rankdata (average ranks) and np.unique tie counts, row by row."""
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, size=(60, 17)).astype(dtype)  # many ties
    x[:20] = rng.permutation(np.arange(17 * 20)).reshape(20, 17)  # rows without ties
    x[20] = 5  # a single group of 17 tied values
    if np.dtype(dtype).kind == "f":
        x[21, :4] = [-0.0, 0.0, -1.5, 1.5]  # -0 and +0 tie, as in rankdata
    ranks, ties = rank_series(x)
    assert ranks.dtype == np.float32 and ranks.shape == x.shape
    np.testing.assert_array_equal(ranks, rankdata(x, axis=1))
    np.testing.assert_array_equal(ties, [tie_term(row) for row in x])
    assert ties[:20].sum() == 0 and ties[20] == 17**3 - 17


def test_rank_series_continuous_float32():
    """Reference: rankdata on random float32 series (no ties, the common fMRI case)."""
    x = np.random.default_rng(1).standard_normal((300, 49)).astype(np.float32)
    ranks, ties = rank_series(x)
    np.testing.assert_array_equal(ranks, rankdata(x, axis=1))
    np.testing.assert_array_equal(ties, 0.0)


# ---------------------------------------------------------------- neighbourhood_sum
@pytest.mark.parametrize("neighbourhood", [7, 19, 27])
@pytest.mark.parametrize("trailing", [(), (3,)])
def test_neighbourhood_sum_matches_offset_loop(neighbourhood, trailing):
    """Reference: loop over voxels and AFNI's offsets, skipping neighbours outside the volume."""
    rng = np.random.default_rng(neighbourhood)
    grid = (4, 5, 3)
    a = rng.integers(0, 10, size=grid + trailing).astype(float)
    expected = np.zeros_like(a)
    for v in itertools.product(*map(range, grid)):
        for o in offsets(neighbourhood):
            u = tuple(x + y for x, y in zip(v, o))
            if all(0 <= c < g for c, g in zip(u, grid)):
                expected[v] += a[u]
    np.testing.assert_array_equal(neighbourhood_sum(a, neighbourhood), expected)


def test_neighbourhood_sum_rejects_8():
    """Only AFNI's 7/19/27 neighbourhoods exist."""
    with pytest.raises(ValueError):
        neighbourhood_sum(np.ones((3, 3, 3)), 8)


# ---------------------------------------------------------------- reho_map vs reference
@pytest.mark.parametrize("tie_correction", [True, False])
@pytest.mark.parametrize("neighbourhood", [7, 19, 27])
def test_reho_map_matches_reference(neighbourhood, tie_correction):
    """Reference: reference_reho (voxel loops, rankdata, Kendall W as AFNI 3dReHo).

    Integer data with many ties, a ragged mask reaching the volume faces, constant voxels,
    and chunk/slab/thread settings from one-voxel chunks and one-plane slabs to the defaults,
    so every chunk and slab boundary is crossed; C- and Fortran-ordered arrays.
    """
    rng = np.random.default_rng(10 * neighbourhood + tie_correction)
    data, mask = ragged_data(rng, (6, 5, 7), 11)
    expected, used_expected = reference_reho(data, mask, neighbourhood, tie_correction)
    assert 0 < used_expected.sum() < mask.sum()  # the constant voxels were dropped
    fortran = np.asfortranarray(data)  # nibabel's layout: time is the slowest axis
    for arr, chunk_voxels, slab, n_threads in [
        (data, 1, 1, 1), (data, 4, 2, 3), (fortran, 7, 3, 2), (data, 16384, 16, None),
        (fortran, 16384, 16, None),
    ]:
        w, used = reho_map(arr, mask, neighbourhood, tie_correction,
                           chunk_voxels=chunk_voxels, slab=slab, n_threads=n_threads)
        np.testing.assert_array_equal(used, used_expected)
        np.testing.assert_allclose(w, expected, rtol=0, atol=2e-7)
        assert w.dtype == np.float32


def test_reho_map_across_default_slabs():
    """Reference: reference_reho on a grid deeper than the default slab, with default settings
    and with small chunks (chunk boundaries inside a plane)."""
    rng = np.random.default_rng(5)
    data, mask = ragged_data(rng, (5, 4, 37), 9, levels=6, p_mask=0.8)
    expected, used_expected = reference_reho(data, mask, 27)
    for kwargs in ({}, {"chunk_voxels": 3}):
        w, used = reho_map(data, mask, **kwargs)
        np.testing.assert_array_equal(used, used_expected)
        np.testing.assert_allclose(w, expected, rtol=0, atol=2e-7)


def test_reho_map_float64_and_continuous_input():
    """Reference: reference_reho on continuous float64 data (ranked in float32 by reho_map;
    values far apart enough that float32 keeps their order)."""
    rng = np.random.default_rng(6)
    data = rng.standard_normal((5, 6, 4, 20))
    mask = rng.random((5, 6, 4)) < 0.7
    expected, used_expected = reference_reho(data, mask, 19)
    w, used = reho_map(data, mask, 19, chunk_voxels=5, slab=1)
    np.testing.assert_array_equal(used, used_expected)
    np.testing.assert_allclose(w, expected, rtol=0, atol=2e-7)


# ---------------------------------------------------------------- properties and hand cases
@pytest.mark.parametrize("neighbourhood", [7, 19, 27])
def test_identical_series_give_w_1(neighbourhood):
    """Reference: Kendall's W is 1 when all raters rank identically (tie-corrected W also
    with ties); without the tie correction, ties make W < 1."""
    rng = np.random.default_rng(2)
    mask = np.ones((4, 4, 4), dtype=bool)
    mask[0, 0, 0] = False
    for series, w_uncorrected_is_1 in ((rng.permutation(15), True), ([3, 1, 1, 2, 5, 5, 5, 0], False)):
        data = np.broadcast_to(np.asarray(series, dtype=np.float32), mask.shape + (len(series),))
        w, used = reho_map(data, mask, neighbourhood)
        np.testing.assert_array_equal(used, mask)
        np.testing.assert_allclose(w[mask], 1.0, rtol=0, atol=1e-6)
        assert (w[~mask] == 0).all()
        w_unc, _ = reho_map(data, mask, neighbourhood, tie_correction=False)
        assert np.allclose(w_unc[mask], 1.0, atol=1e-6) == w_uncorrected_is_1


@pytest.mark.parametrize("neighbourhood", [7, 19, 27])
def test_hand_computed_three_voxels(neighbourhood):
    """Reference: W worked out by hand for 3 voxels in a row, N = 4 time points.

    Series (ranks):  v0 = 1 2 3 4 (1 2 3 4);  v1 = 2 1 4 3 (2 1 4 3);
                     v2 = 1 1 2 3 (1.5 1.5 3 4), tie term T = 2^3 - 2 = 6.
    In a 3x1x1 volume every neighbourhood is the voxel and its x-neighbours.
    N(N+1)^2 = 100, N(N^2-1) = 60.
    v0: M=2, R = 3 3 7 7, sum R^2 = 116, num = 12*116 - 3*4*100 = 192,
        den = 4*60 = 240 -> W = 0.8 (no ties in v0, v1: same without correction).
    v1: M=3, R = 4.5 4.5 10 11, sum R^2 = 261.5, num = 3138 - 2700 = 438,
        den = 9*60 - 3*6 = 522 -> W = 438/522; uncorrected 438/540.
    v2: M=2, R = 3.5 2.5 7 7, sum R^2 = 116.5, num = 1398 - 1200 = 198,
        den = 240 - 2*6 = 228 -> W = 198/228; uncorrected 198/240.
    """
    data = np.array([[1, 2, 3, 4], [2, 1, 4, 3], [1, 1, 2, 3]], dtype=np.float32)[:, None, None, :]
    mask = np.ones((3, 1, 1), dtype=bool)
    w, _ = reho_map(data, mask, neighbourhood)
    np.testing.assert_allclose(w.ravel(), [0.8, 438 / 522, 198 / 228], rtol=1e-6)
    w, _ = reho_map(data, mask, neighbourhood, tie_correction=False)
    np.testing.assert_allclose(w.ravel(), [0.8, 438 / 540, 198 / 240], rtol=1e-6)


def test_zero_variance_voxels_leave_mask():
    """Reference: a constant voxel is treated as outside the mask: W of its neighbours equals
    W computed with that voxel removed from the mask by hand, and the voxel's own W is 0."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((4, 4, 4, 10)).astype(np.float32)
    data[1, 2, 1] = 7.0
    mask = np.ones((4, 4, 4), dtype=bool)
    w, used = reho_map(data, mask, 27)
    assert not used[1, 2, 1] and used.sum() == mask.sum() - 1
    assert w[1, 2, 1] == 0
    mask_by_hand = mask.copy()
    mask_by_hand[1, 2, 1] = False
    w_by_hand, _ = reho_map(data, mask_by_hand, 27)
    np.testing.assert_array_equal(w, w_by_hand)
    expected, _ = reference_reho(data, mask_by_hand, 27)
    np.testing.assert_allclose(w, expected, rtol=0, atol=2e-7)


# ---------------------------------------------------------------- normalise_in_mask (m/z maps)
def test_normalise_in_mask_matches_statistics_module():
    """Reference: statistics.mean / statistics.stdev (sample SD) of the in-mask values."""
    rng = np.random.default_rng(4)
    w = rng.random((5, 4, 3)).astype(np.float32)
    mask = rng.random((5, 4, 3)) < 0.6
    m, z = normalise_in_mask(w, mask, "ReHo")
    vals = [float(v) for v in w[mask]]
    mean, sd = statistics.mean(vals), statistics.stdev(vals)
    np.testing.assert_allclose(m[mask], np.array(vals) / mean, rtol=1e-6)
    np.testing.assert_allclose(z[mask], (np.array(vals) - mean) / sd, rtol=1e-5, atol=1e-6)
    assert (m[~mask] == 0).all() and (z[~mask] == 0).all()


def test_normalise_in_mask_constant_map_raises():
    """A constant map has no SD: a user error, not a division by zero."""
    with pytest.raises(InputError):
        normalise_in_mask(np.full((3, 3, 3), 0.5, dtype=np.float32), np.ones((3, 3, 3), dtype=bool), "ReHo")


# ---------------------------------------------------------------- bad input, one per case
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data_raises(bad):
    data = np.random.default_rng(0).standard_normal((4, 4, 4, 6)).astype(np.float32)
    data[2, 1, 3, 4] = bad
    with pytest.raises(InputError, match="1 in-mask voxels have NaN or Inf"):
        reho_map(data, np.ones((4, 4, 4), dtype=bool))


def test_non_finite_outside_mask_is_ignored():
    data = np.random.default_rng(0).standard_normal((4, 4, 4, 6)).astype(np.float32)
    data[0, 0, 0] = np.nan
    mask = np.ones((4, 4, 4), dtype=bool)
    mask[0, 0, 0] = False
    w, used = reho_map(data, mask)
    assert np.isfinite(w).all() and used.sum() == 63


def test_3d_data_raises():
    with pytest.raises(InputError, match="4-D"):
        reho_map(np.ones((4, 4, 4)), np.ones((4, 4, 4), dtype=bool))


def test_neighbourhood_8_raises():
    data = np.random.default_rng(0).standard_normal((3, 3, 3, 5))
    with pytest.raises(InputError, match="7, 19 or 27"):
        reho_map(data, np.ones((3, 3, 3), dtype=bool), neighbourhood=8)


def test_mask_shape_mismatch_raises():
    with pytest.raises(InputError, match="mask shape"):
        reho_map(np.ones((3, 3, 3, 5)), np.ones((3, 3, 4), dtype=bool))
