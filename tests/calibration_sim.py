"""Null cohorts shaped like real regional data, for the calibration tests of the cohort p-values.

Per subject s, measure m and Desikan-Killiany region r (83 regions, the atlas rviflow ships):

    value = 5 + site offset_{site, r} - 0.02 (age - 45) + 0.2 male + site scale x e_smr
            + case x planted_d x pattern_r

- e_sm (83,) is spatially smooth on the real DK geometry: Gaussian with covariance
  exp(-distance / length_mm) between atlas-region centroids (length 25 mm by default);
- measures are coupled within subject: e_sm = sqrt(rho) shared_s + sqrt(1 - rho) own_sm, so
  corr(e_smr, e_sm'r) = rho in every region (like ReHo and CBF, which rviflow's coupling.tsv
  reports), and the d-maps of two measures share sampling error;
- sites differ in location (per region) and scale; age and sex act on every measure (so they
  confound an unadjusted coupling r);
- ``planted_d`` x ``pattern`` (a smooth map, values in [-1, 1], the same for every measure)
  is the case-control difference in SD units of e; 0 = the null.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from rviflow.cohort.effects import design_matrix

MEASURES = ("reho", "cbf", "thickness")


@lru_cache(maxsize=1)
def dk_geometry() -> tuple[pd.DataFrame, np.ndarray]:
    """(centroids of the 83 DK regions in mm, their (83, 83) distance matrix)."""
    from rviflow.transcriptomics.nulls import distance_matrix, region_centroids
    from rviflow.preprocess.parcellate import default_atlas, read_labels

    img, labels = default_atlas()
    c = region_centroids(img, read_labels(labels))
    return c, distance_matrix(c)


@lru_cache(maxsize=4)
def _chol(length_mm: float) -> np.ndarray:
    """Cholesky factor of exp(-distance / length_mm); length 0 = independent regions."""
    _, dist = dk_geometry()
    if length_mm <= 0:
        return np.eye(len(dist))
    return np.linalg.cholesky(np.exp(-dist / length_mm) + 1e-8 * np.eye(len(dist)))


def planted_pattern() -> pd.Series:
    """A smooth regional pattern in [-1, 1]: a deficit along the anterior-posterior axis."""
    c, _ = dk_geometry()
    p = -np.cos(c["y"].to_numpy() / 35.0)
    return pd.Series(p / np.abs(p).max(), index=c.index)


@lru_cache(maxsize=1)
def _sphere_chol(length: float) -> tuple[list[str], np.ndarray]:
    from rviflow.transcriptomics.nulls import dk_sphere_centroids
    from rviflow.preprocess.parcellate import default_atlas, read_labels

    sph = dk_sphere_centroids(read_labels(default_atlas()[1]))
    xyz = sph[["x", "y", "z"]].to_numpy(float)
    xyz[:, 0] = np.abs(xyz[:, 0])  # left-right symmetric, as the spin test's mirrored rotation assumes
    d2 = ((xyz[:, None] - xyz[None]) ** 2).sum(-1)
    return list(sph.index), np.linalg.cholesky(np.exp(-d2 / (2 * length**2)) + 1e-6 * np.eye(len(xyz)))


def random_smooth_map(rng: np.random.Generator, length: float = 0.5) -> pd.Series:
    """A random smooth map of the 68 DK cortical parcels (Gaussian process on the fsaverage
    sphere, squared-exponential kernel of chord length ``length``, left-right symmetric), SD 1:
    an effect map unrelated to any other one drawn; 0 in the other regions."""
    names, L = _sphere_chol(length)
    c, _ = dk_geometry()
    m = pd.Series(0.0, index=c.index)
    v = L @ rng.normal(size=len(names))
    m[names] = (v - v.mean()) / v.std()
    return m


def simulate_cohort(n: int = 120, n_sites: int = 3, rho: float = 0.5, planted_d: float = 0.0,
                    seed: int = 0, length_mm: float = 25.0, measures=MEASURES,
                    symptom_from: str | None = None):
    """(values {measure: subjects x 83 regions}, participants.tsv rows, design_matrix).

    Half the subjects are cases (random within the cohort), sites assigned in turn. With
    ``symptom_from`` a 'hamd' column tracks that measure's mean planted-pattern deficit among
    patients; otherwise hamd is independent of everything (the null of a symptom association).
    """
    rng = np.random.default_rng([seed, 20261202])
    c, _ = dk_geometry()
    regions = list(c.index)
    R = len(regions)
    L = _chol(float(length_mm))
    site = np.arange(n) % n_sites
    case = rng.permutation(np.arange(n) % 2 == 0)
    age = rng.uniform(20, 65, n)
    male = rng.random(n) < 0.5
    ids = [f"sub-{i:04d}" for i in range(n)]
    shared = rng.normal(size=(n, R)) @ L.T
    pattern = planted_pattern().to_numpy()
    values = {}
    for m in measures:
        own = rng.normal(size=(n, R)) @ L.T
        e = np.sqrt(rho) * shared + np.sqrt(1 - rho) * own
        off = rng.normal(0, 0.5, (n_sites, R))[site]
        scale = rng.uniform(0.8, 1.25, n_sites)[site][:, None]
        v = 5 + off - 0.02 * (age[:, None] - 45) + 0.2 * male[:, None] + scale * e
        v = v + np.outer(case, planted_d * pattern)
        values[m] = pd.DataFrame(v, index=ids, columns=regions)
    hamd = rng.normal(20, 4, n)
    if symptom_from is not None:
        e = values[symptom_from].to_numpy() @ pattern / (pattern**2).sum()
        hamd = hamd + 4 * (e - e.mean()) / e.std()
    parts = pd.DataFrame(dict(participant_id=ids, diagnosis=np.where(case, "MDD", "HC"), age=age,
                              sex=np.where(male, "M", "F"), site=[f"site{s + 1}" for s in site],
                              hamd=np.where(case, np.round(hamd, 1), np.nan)))
    design = design_matrix(parts, "diagnosis", "MDD", "HC", ["age", "sex"], "site")
    return values, parts, design
