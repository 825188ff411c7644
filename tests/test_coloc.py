"""Co-localisation with BrainSMASH and spin nulls; atlas centroids; regional coupling."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rviflow.coloc import colocalisation, coupling, spatial_correlation
from rviflow.errors import InputError
from rviflow.nulls import distance_matrix, null_coordinates, region_centroids
from rviflow.parcellate import default_atlas, read_labels


@pytest.fixture(scope="module")
def centroids():
    img, labels = default_atlas()
    return region_centroids(img, read_labels(labels))


@pytest.fixture(scope="module")
def sphere():
    img, labels = default_atlas()
    return null_coordinates("spin", img, read_labels(labels))


def test_centroids_of_a_small_label_image(tmp_path):
    """Reference: centroids worked out by hand on a 4 x 3 x 2 grid with a 2 mm affine."""
    data = np.zeros((4, 3, 2), np.int16)
    data[0:2, 0, 0] = 1          # voxels (0,0,0), (1,0,0): centre (0.5, 0, 0)
    data[3, 2, 1] = 2
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = [-10, 0, 5]
    nib.save(nib.Nifti1Image(data, aff), tmp_path / "a.nii.gz")
    c = region_centroids(str(tmp_path / "a.nii.gz"), pd.DataFrame({"index": [1, 2, 3], "name": ["A", "B", "C"]}))
    assert list(c.index) == ["A", "B"]
    np.testing.assert_allclose(c.loc["A"], [-9.0, 0.0, 5.0])
    np.testing.assert_allclose(c.loc["B"], [-4.0, 4.0, 7.0])
    assert distance_matrix(c)[0, 1] == pytest.approx(np.sqrt(25 + 16 + 4))


def _smooth_maps(centroids, seed=0):
    """A spatially smooth map (a function of position + noise), a noisy copy of it, and noise."""
    rng = np.random.default_rng(seed)
    regions = list(centroids.index)
    xyz = centroids.to_numpy()
    a = pd.Series(np.sin(xyz[:, 1] / 30) + 0.3 * rng.normal(size=len(regions)), index=regions, name="reho")
    b = pd.Series(a.to_numpy() + 0.3 * rng.normal(size=len(regions)), index=regions, name="cbf")
    c = pd.Series(rng.normal(size=len(regions)), index=regions, name="thickness")
    return a, b, c


@pytest.mark.parametrize("method", ["brainsmash", "spin"])
def test_spatial_null_for_related_and_unrelated_maps(centroids, sphere, method):
    """Planted: b = a + noise is co-localised with a (p small); c is unrelated noise (p not small).
    Both nulls correlate null maps of a with b; spin uses the 68 cortical parcels only."""
    coords = centroids if method == "brainsmash" else sphere
    a, b, c = _smooth_maps(centroids)
    res, null_r = spatial_correlation(a, b, coords, method, n_null=400, seed=1)
    kept = [r for r in a.index if r in coords.index]
    assert res["n_regions"] == (83 if method == "brainsmash" else 68) == len(kept)
    assert res["r"] == pytest.approx(stats.pearsonr(a[kept], b[kept])[0])   # reference: scipy
    assert res["r"] > 0.8 and res["p_spatial_null"] < 0.01 and res["n_null"] == 400 == len(null_r)
    assert res["null_method"] == method and res["p_spatial_null"] == pytest.approx(
        (1 + np.sum(np.abs(null_r) >= abs(res["r"]))) / 401)
    res, _ = spatial_correlation(a, c, coords, method, n_null=200, seed=1)
    assert res["p_spatial_null"] > 0.05


def test_spin_nulls_are_permutations_within_hemisphere(centroids, sphere):
    a, b, _ = _smooth_maps(centroids)
    from rviflow.nulls import generate_nulls

    cortex = a[[r for r in a.index if r in sphere.index]]
    nulls = generate_nulls(cortex, "spin", sphere, n=20, seed=0)
    left = (sphere.loc[cortex.index, "hemisphere"] == "L").to_numpy()
    for row in nulls:
        np.testing.assert_allclose(np.sort(row[left]), np.sort(cortex.to_numpy()[left]))
    assert not np.allclose(nulls[0], cortex.to_numpy())


def test_colocalisation_table_null_table_and_too_few_regions(centroids):
    rng = np.random.default_rng(2)
    regions = list(centroids.index)
    eff = pd.concat([pd.DataFrame(dict(measure=m, region=regions, d=rng.normal(size=len(regions))))
                     for m in ("reho", "cbf", "thickness")])
    tab, nulls = colocalisation(eff, centroids, "brainsmash", n_null=100)
    assert list(tab[["map_a", "map_b"]].iloc[0]) == ["reho", "cbf"] and tab["n_regions"].iloc[0] == 83
    assert list(tab.columns) == ["map_a", "map_b", "n_regions", "r", "p_spatial_null", "p_parametric", "n_null",
                                 "null_method"]
    assert len(nulls) == 300 and nulls.groupby(["map_a", "map_b"]).size().eq(100).all()
    with pytest.raises(InputError, match="3 regions with both maps"):
        spatial_correlation(pd.Series([1.0, 2, 3], index=regions[:3], name="a"),
                            pd.Series([1.0, 3, 2], index=regions[:3], name="b"), centroids, "brainsmash", 100)


def test_coupling_matches_pearson():
    rng = np.random.default_rng(3)
    ids = [f"sub-{i:02d}" for i in range(40)]
    a = pd.DataFrame(rng.normal(size=(40, 3)), index=ids, columns=["x", "y", "z"])
    b = a * 0.5 + pd.DataFrame(rng.normal(size=(40, 3)), index=ids, columns=["x", "y", "z"])
    is_case = pd.Series(np.arange(40) < 20, index=ids)
    tab = coupling({"reho": a, "cbf": b}, is_case, [("reho", "cbf")]).set_index("region")
    for r in ("x", "y", "z"):
        assert tab.loc[r, "r"] == pytest.approx(stats.pearsonr(a[r], b[r])[0])
        assert tab.loc[r, "r_case"] == pytest.approx(stats.pearsonr(a[r][:20], b[r][:20])[0])
    assert (tab["q_fdr"] >= tab["p"] - 1e-12).all()
