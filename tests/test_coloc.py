"""Co-localisation with BrainSMASH nulls; atlas centroids; regional coupling."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rviflow.coloc import colocalisation, coupling, distance_matrix, region_centroids, spatial_correlation
from rviflow.errors import InputError
from rviflow.parcellate import default_atlas, read_labels


@pytest.fixture(scope="module")
def centroids():
    img, labels = default_atlas()
    return region_centroids(img, read_labels(labels))


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


def test_spatial_null_for_related_and_unrelated_maps(centroids):
    rng = np.random.default_rng(0)
    regions = list(centroids.index)
    # spatially smooth map: a function of position + noise
    xyz = centroids.to_numpy()
    a = pd.Series(np.sin(xyz[:, 1] / 30) + 0.3 * rng.normal(size=len(regions)), index=regions, name="reho")
    b = pd.Series(a.to_numpy() + 0.3 * rng.normal(size=len(regions)), index=regions, name="cbf")
    res = spatial_correlation(a, b, centroids, n_null=400, seed=1)
    assert res["r"] == pytest.approx(stats.pearsonr(a, b)[0])   # reference: scipy
    assert res["r"] > 0.8 and res["p_spatial_null"] < 0.01 and res["n_null"] == 400
    c = pd.Series(rng.normal(size=len(regions)), index=regions, name="thickness")
    res = spatial_correlation(a, c, centroids, n_null=200, seed=1)
    assert res["p_spatial_null"] > 0.01


def test_colocalisation_table_and_too_few_regions(centroids):
    rng = np.random.default_rng(2)
    regions = list(centroids.index)
    eff = pd.concat([pd.DataFrame(dict(measure=m, region=regions, d=rng.normal(size=len(regions))))
                     for m in ("reho", "thickness")])
    tab = colocalisation(eff, centroids, n_null=100)
    assert list(tab[["map_a", "map_b"]].iloc[0]) == ["reho", "thickness"] and tab["n_regions"].iloc[0] == 83
    with pytest.raises(InputError, match="3 regions with both maps"):
        spatial_correlation(pd.Series([1.0, 2, 3], index=regions[:3], name="a"),
                            pd.Series([1.0, 3, 2], index=regions[:3], name="b"), centroids, 100)


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
