"""Regional homogeneity (ReHo): Kendall's W of each voxel's time series with its neighbours.

Follows AFNI 3dReHo (Taylor & Saad 2013, ``src/ptaylor/rsfc.c``):

* neighbourhoods of 7, 19 or 27 voxels = offsets with squared length <= 1, 2, 3
  (the centre voxel included);
* neighbours outside the mask or the volume are left out and W uses M, the count present;
* ranks are averaged over ties and W is tie-corrected::

      W = (12 sum_t R_t^2 - 3 M^2 N (N+1)^2) / (M^2 N (N^2-1) - M sum_i T_i)

  with R_t the neighbourhood rank sum at time t, N time points and
  T_i = sum over tie groups of voxel i of (t^3 - t).  With ``tie_correction=False`` the
  ``M sum_i T_i`` term is dropped, as DPABI's ``y_reho.m`` and C-PAC do.

We write our own rather than wrapping a library: AFNI is not installable here, and junifer's
numpy port holds several float64 copies of the whole 4-D run (see benchmarks/bench_reho.py
and benchmarks/results/ for measured time and memory). This version streams through the
volume in slabs of z-planes on a thread pool. Each plane's in-mask series are ranked once in
float32 (a sort of packed value/index keys), scattered into a dense plane and summed over the
in-plane part of the neighbourhood (3x3 box or plus sign); a voxel's rank sums are then the
centre plane's in-plane sum plus its two neighbour planes' (27 = box + box + box,
19 = plus + box + plus, 7 = centre + plus + centre). Only a few planes are alive per thread,
so the memory beyond the input array stays at tens of MB.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rviflow.errors import InputError

NEIGHBOURHOODS = (7, 19, 27)


def _rank_sorted_keys(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort order and sorted order-preserving uint32 keys of float32 rows.

    Sorting one uint64 array (value key in the high word, column in the low word) is about
    twice as fast as ``np.argsort`` on float32, and the low words are the stable order.
    """
    n_vox, n_t = x.shape
    bits = np.add(x, np.float32(0.0)).view(np.uint32)  # -0.0 -> +0.0, fresh array
    flip = bits >> np.uint32(31)
    flip *= np.uint32(0x7FFFFFFF)
    flip |= np.uint32(0x80000000)
    bits ^= flip  # negatives: all bits flipped; positives: sign bit set
    del flip
    key = np.empty((n_vox, n_t), dtype=np.uint64)
    words = key.view(np.uint32).reshape(n_vox, n_t, 2)
    lo, hi = (0, 1) if np.little_endian else (1, 0)
    words[..., hi] = bits
    words[..., lo] = np.arange(n_t, dtype=np.uint32)
    del bits
    key.sort(axis=1)
    return words[..., lo].astype(np.intp), words[..., hi]


def rank_series(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks along the last axis, and the tie term per row.

    Parameters
    ----------
    x : (V, N) array
        V time series of N points.

    Returns
    -------
    ranks : (V, N) float32
        Ranks 1..N, ties given their average rank (exact in float32: half-integers).
    ties : (V,) float64
        sum over tie groups of (t^3 - t), 0 for a series without ties.
    """
    x = np.ascontiguousarray(x)
    n_vox, n_t = x.shape
    exact_in_f32 = x.dtype == np.float32 or (x.dtype.kind in "iub" and x.dtype.itemsize <= 2)
    if exact_in_f32 and not np.isnan(x).any():
        order, xs = _rank_sorted_keys(x.astype(np.float32, copy=False))
    else:  # float64 etc. (or NaN): compare in the input's own precision
        order = np.argsort(x, axis=1, kind="stable")
        xs = np.take_along_axis(x, order, axis=1)
    ranks = np.empty((n_vox, n_t), dtype=np.float32)
    ties = np.zeros(n_vox)
    ordinal = np.arange(1, n_t + 1, dtype=np.float32)
    flat = order + (np.arange(n_vox) * n_t)[:, None]  # faster than put_along_axis
    ranks.reshape(-1)[flat.reshape(-1)] = np.broadcast_to(ordinal, (n_vox, n_t)).reshape(-1)
    del flat
    new_group = np.ones((n_vox, n_t), dtype=bool)
    np.not_equal(xs[:, 1:], xs[:, :-1], out=new_group[:, 1:])
    tied = np.flatnonzero(~new_group.all(axis=1))
    if tied.size:  # average ranks, only for the rows that have ties
        new_group = new_group[tied]
        pos = np.broadcast_to(np.arange(n_t, dtype=np.int32), new_group.shape)
        start = np.maximum.accumulate(np.where(new_group, pos, 0), axis=1)
        end_group = np.ones_like(new_group)
        end_group[:, :-1] = new_group[:, 1:]
        # last index of each group: reverse running minimum of group-end positions
        end = np.where(end_group, pos, n_t)[:, ::-1]
        end = np.minimum.accumulate(end, axis=1)[:, ::-1]
        sub = np.empty(new_group.shape, dtype=np.float32)
        np.put_along_axis(sub, order[tied], ((start + end) / 2.0 + 1.0).astype(np.float32), axis=1)
        ranks[tied] = sub
        size = (end - start + 1).astype(np.float64)
        # each member of a group of size t contributes (t^3 - t) / t = t^2 - 1
        ties[tied] = (size**2 - 1.0).sum(axis=1)
    return ranks, ties


def _sum3(a: np.ndarray, axis: int, centre: bool = True) -> np.ndarray:
    """a[i-1] + a[i+1] (+ a[i] if centre) along ``axis``, zeros beyond the edges."""
    out = a.copy() if centre else np.zeros_like(a)
    if a.shape[axis] < 2:
        return out
    lo = [slice(None)] * a.ndim
    hi = [slice(None)] * a.ndim
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    out[tuple(hi)] += a[tuple(lo)]
    out[tuple(lo)] += a[tuple(hi)]
    return out


def neighbourhood_sum(a: np.ndarray, neighbourhood: int) -> np.ndarray:
    """Sum of ``a`` over each voxel's 7/19/27-neighbourhood (first three axes), zero-padded."""
    if neighbourhood == 27:
        s = a
        for ax in range(3):
            s = _sum3(s, ax)
        return s
    if neighbourhood == 7:
        s = a.copy()
        for ax in range(3):
            s += _sum3(a, ax, centre=False)
        return s
    if neighbourhood == 19:
        corners = a
        for ax in range(3):
            corners = _sum3(corners, ax, centre=False)
        s = neighbourhood_sum(a, 27)
        s -= corners
        return s
    raise ValueError(f"neighbourhood must be one of {NEIGHBOURHOODS}, got {neighbourhood}")


def _plane_sums(plane: np.ndarray, neighbourhood: int) -> tuple[np.ndarray, np.ndarray]:
    """In-plane sums of a dense (X, Y, N) rank plane: (as centre plane, as z-neighbour plane).

    The 3-D neighbourhood of (x, y, z) is, plane by plane: 27 = box | box | box,
    19 = plus | box | plus, 7 = centre | plus | centre (3x3 box, plus = centre + 4 faces).
    """
    rows = _sum3(plane, 0)
    if neighbourhood == 7:
        plus = rows
        plus += _sum3(plane, 1, centre=False)
        return plus, plane
    box = _sum3(rows, 1)
    if neighbourhood == 27:
        return box, box
    rows += _sum3(plane, 1, centre=False)
    return box, rows


def reho_map(
    data: np.ndarray,
    mask: np.ndarray,
    neighbourhood: int = 27,
    tie_correction: bool = True,
    chunk_voxels: int = 16384,
    slab: int = 16,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Kendall's W of every in-mask voxel with its neighbourhood.

    Parameters
    ----------
    data : (X, Y, Z, N) array
        Time series; any real dtype (ranked in float32).
    mask : (X, Y, Z) bool array
        Voxels to analyse. Voxels whose series is constant are removed from it (they have no
        ranks) and reported in the returned ``used_mask``.
    neighbourhood : {7, 19, 27}
    tie_correction : bool
        Use the tie-corrected W (AFNI) or the uncorrected one (DPABI / C-PAC).
    chunk_voxels : int
        At most this many series are ranked in one call (bounds the sort's temporaries).
    slab : int
        z-planes per unit of work; a unit also ranks the plane on either side of it, so larger
        slabs repeat less work and smaller ones balance better over threads.
    n_threads : int, optional
        Threads for the slabs (default: up to 4, at most the CPU count).

    Returns
    -------
    w : (X, Y, Z) float32
        Kendall's W in [0, 1] in ``used_mask``, 0 elsewhere.
    used_mask : (X, Y, Z) bool
        ``mask`` minus zero-variance voxels.
    """
    if neighbourhood not in NEIGHBOURHOODS:
        raise InputError(f"ReHo neighbourhood must be 7, 19 or 27, got {neighbourhood}")
    if data.ndim != 4:
        raise InputError(f"ReHo needs a 4-D time series, got {data.ndim} dimensions")
    if mask.shape != data.shape[:3]:
        raise InputError(f"mask shape {mask.shape} does not match data grid {data.shape[:3]}")
    n_t = data.shape[3]
    if n_t < 3:
        raise InputError(f"ReHo needs at least 3 time points, got {n_t}")
    if chunk_voxels < 1 or slab < 1:
        raise ValueError("chunk_voxels and slab must be at least 1")
    mask = np.asarray(mask, dtype=bool)
    nx, ny, nz = mask.shape
    used_mask = np.zeros(mask.shape, dtype=bool)
    tie_grid = np.zeros(mask.shape)
    sum_r2 = np.zeros(mask.shape)  # sum_t R_t^2 of each voxel
    n_bad = np.zeros(nz, dtype=np.int64)  # in-mask voxels with NaN / Inf, per plane
    time_slowest = abs(data.strides[3]) > max(abs(s) for s in data.strides[:3])

    def _prepare(z: int, box: tuple[slice, slice], own: bool):
        """Rank plane z inside ``box``; its in-plane sums, or None if it has no used voxel."""
        sel = mask[box + (z,)]
        if not sel.any():
            return None
        block = data[box + (z,)]  # (bx, by, N) view
        if time_slowest:
            # NIfTI arrays from nibabel are Fortran-ordered: gathering a voxel's series would
            # stride by a whole volume per time point. Copy the plane time-major (streaming),
            # then pick the voxels as columns.
            ix, iy = np.nonzero(sel)
            t_major = np.ascontiguousarray(block.transpose(2, 1, 0), dtype=np.float32)
            cols = np.take(t_major.reshape(n_t, -1), iy * sel.shape[0] + ix, axis=1)
            series = np.ascontiguousarray(cols.T)  # (V, N), voxels in C order of ``sel``
            del t_major, cols
        else:
            series = np.asarray(block[sel], dtype=np.float32)  # (V, N)
        finite = np.isfinite(series).all(axis=1)
        keep = finite & (series.max(axis=1) > series.min(axis=1))
        used = sel.copy()
        used[sel] = keep
        series = series[keep] if not keep.all() else series
        ranks = np.empty_like(series)
        ties = np.empty(series.shape[0])
        for lo in range(0, series.shape[0], chunk_voxels):
            ranks[lo : lo + chunk_voxels], ties[lo : lo + chunk_voxels] = rank_series(
                series[lo : lo + chunk_voxels]
            )
        del series
        if own:
            n_bad[z] = int((~finite).sum())
            used_mask[box + (z,)] = used
            tie_grid[box + (z,)][used] = ties
        plane = np.zeros(used.shape + (n_t,), dtype=np.float32)
        plane[used] = ranks
        del ranks
        return _plane_sums(plane, neighbourhood)

    def _unit(z0: int) -> None:
        z1 = min(z0 + slab, nz)
        h0, h1 = max(z0 - 1, 0), min(z1 + 1, nz)
        xs, ys = np.nonzero(mask[:, :, h0:h1].any(axis=2))
        if xs.size == 0:
            return
        # crop to the mask's bounding box in these planes plus one voxel (the neighbours)
        box = (
            slice(max(xs.min() - 1, 0), min(xs.max() + 2, nx)),
            slice(max(ys.min() - 1, 0), min(ys.max() + 2, ny)),
        )
        sums = {z: _prepare(z, box, own=z0 <= z < z1) for z in range(h0, min(z0 + 1, h1))}
        for z in range(z0, z1):
            if z + 1 < h1:
                sums[z + 1] = _prepare(z + 1, box, own=z + 1 < z1)
            sums.pop(z - 2, None)
            if sums[z] is None:
                continue
            rsum = sums[z][0].copy()
            for side in (z - 1, z + 1):
                if sums.get(side) is not None:
                    rsum += sums[side][1]
            here = used_mask[box + (z,)]
            r = rsum[here].astype(np.float64)  # R_t <= 27 N: exact, squares need float64
            del rsum
            sum_r2[box + (z,)][here] = np.einsum("ij,ij->i", r, r)

    n_threads = n_threads or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(n_threads) as pool:  # numpy sorts and ufuncs release the GIL
        list(pool.map(_unit, range(0, nz, slab)))
    if n_bad.sum():
        raise InputError(f"{int(n_bad.sum())} in-mask voxels have NaN or Inf values")

    m = neighbourhood_sum(used_mask.astype(np.float64), neighbourhood)[used_mask]
    num = 12.0 * sum_r2[used_mask] - 3.0 * m**2 * n_t * (n_t + 1.0) ** 2
    den = m**2 * n_t * (n_t**2 - 1.0)
    if tie_correction:
        den -= m * neighbourhood_sum(tie_grid, neighbourhood)[used_mask]
    out = np.zeros(num.shape)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    w = np.zeros(mask.shape, dtype=np.float32)
    w[used_mask] = np.clip(out, 0.0, 1.0)
    return w, used_mask
