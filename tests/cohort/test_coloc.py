"""Co-localisation with BrainSMASH and spin nulls; atlas centroids; regional coupling."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rviflow.cohort.coloc import colocalisation, coupling, spatial_correlation
from rviflow.cohort.effects import design_matrix
from rviflow.errors import InputError
from rviflow.transcriptomics.nulls import distance_matrix, null_coordinates, region_centroids
from rviflow.preprocess.parcellate import default_atlas, read_labels


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
    from rviflow.transcriptomics.nulls import generate_nulls

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
    assert list(tab.columns) == ["map_a", "map_b", "n_regions", "n_subjects", "r", "p", "p_spatial_null",
                                 "p_label_perm", "p_parametric", "n_null", "n_perm", "null_method", "method"]
    assert (tab["method"] == "spatial_null_only").all() and (tab["p"] == tab["p_spatial_null"]).all()
    assert len(nulls) == 300 and nulls.groupby(["map_a", "map_b"]).size().eq(100).all()
    assert (nulls["null"] == "spatial").all()
    with pytest.raises(InputError, match="3 regions with both maps"):
        spatial_correlation(pd.Series([1.0, 2, 3], index=regions[:3], name="a"),
                            pd.Series([1.0, 3, 2], index=regions[:3], name="b"), centroids, "brainsmash", 100)


def test_coupling_is_the_partial_r_given_the_design():
    """Reference: residuals of statsmodels OLS on the design, scipy's Pearson r of them, and the
    t test with n - 2 - k dof written out. Both measures share an age slope and a site offset
    (and no coupling in region z): plain Pearson r would call that coupling, the partial r not."""
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    n = 60
    ids = [f"sub-{i:02d}" for i in range(n)]
    parts = pd.DataFrame(dict(participant_id=ids, diagnosis=np.where(np.arange(n) % 2, "MDD", "HC"),
                              age=rng.uniform(20, 70, n), site=[f"s{i % 3}" for i in range(n)]))
    design = design_matrix(parts, "diagnosis", "MDD", "HC", ["age"], "site")
    shared = (0.1 * parts["age"].to_numpy() + np.repeat([[0, 3, -3]], 20, 0).ravel())[:, None]
    a = pd.DataFrame(rng.normal(size=(n, 3)) + shared, index=ids, columns=["x", "y", "z"])
    b = pd.DataFrame(rng.normal(size=(n, 3)) + shared, index=ids, columns=["x", "y", "z"])
    b[["x", "y"]] += a[["x", "y"]].to_numpy()
    tab = coupling({"reho": a, "cbf": b}, design, [("reho", "cbf")]).set_index("region")
    X = design.to_numpy(float)
    for r in ("x", "y", "z"):
        ra, rb = sm.OLS(a[r].to_numpy(), X).fit().resid, sm.OLS(b[r].to_numpy(), X).fit().resid
        pr = stats.pearsonr(ra, rb)[0]
        dof = n - X.shape[1] - 1
        assert tab.loc[r, "r"] == pytest.approx(pr)
        assert tab.loc[r, "p"] == pytest.approx(2 * stats.t.sf(abs(pr) * np.sqrt(dof / (1 - pr**2)), dof))
        case = design["case"].to_numpy() == 1
        Xc = design.loc[case].drop(columns="case").to_numpy(float)
        rc = stats.pearsonr(sm.OLS(a[r][case].to_numpy(), Xc).fit().resid, sm.OLS(b[r][case].to_numpy(), Xc).fit().resid)[0]
        assert tab.loc[r, "r_case"] == pytest.approx(rc)
    assert stats.pearsonr(a["z"], b["z"])[1] < 1e-6 and tab.loc["z", "p"] > 0.05   # confound vs coupling
    assert tab.loc["x", "p"] < 1e-6 and (tab["q_fdr"] >= tab["p"] - 1e-12).all()


def test_freedman_lane_d_equals_statsmodels_on_permuted_residuals():
    """Reference: Freedman-Lane written plainly: reduced-model fit + permuted residuals, full
    model refitted by statsmodels per column; d = beta_case / residual SD. Permutations stay
    within site and the identity gives :func:`rviflow.cohort.effects.effect_sizes`' d."""
    import statsmodels.api as sm

    from rviflow.cohort.effects import effect_sizes
    from rviflow.cohort.permutation import FreedmanLane, within_block_permutations

    rng = np.random.default_rng(0)
    n, m = 90, 6
    site = np.arange(n) % 3
    parts = pd.DataFrame(dict(participant_id=[f"sub-{i:02d}" for i in range(n)],
                              diagnosis=np.where(rng.random(n) < 0.5, "MDD", "HC"), age=rng.normal(40, 10, n),
                              site=[f"s{s}" for s in site]))
    design = design_matrix(parts, "diagnosis", "MDD", "HC", ["age"], "site")
    X = design.to_numpy(float)
    Y = rng.normal(size=(n, m)) + 0.02 * X[:, [2]] + X[:, [3]]
    fl = FreedmanLane(Y, X, 1)
    perms = within_block_permutations(site, n, 5, seed=1)
    d = fl.d(perms, block=2)
    Z = np.delete(X, 1, 1)
    for i, p in enumerate(perms):
        assert (site[p] == site).all() and sorted(p) == list(range(n))
        for j in range(m):
            red = sm.OLS(Y[:, j], Z).fit()
            full = sm.OLS(red.fittedvalues + red.resid[p], X).fit()
            assert d[i, j] == pytest.approx(full.params[1] / np.sqrt(full.scale), abs=1e-10)
    eff = effect_sizes(pd.DataFrame(Y, index=design.index), design, "x")
    np.testing.assert_allclose(fl.d()[0], eff["d"].to_numpy(), atol=1e-10)


def test_label_permutation_removes_shared_noise_and_keeps_a_shared_effect(tmp_path):
    """The issue's case, through the co-localisation step on files (what the Snakemake rule
    runs): 120 subjects (60/60, 3 sites), three measures coupled within subject (r = 0.5 per
    region: coupling.tsv shows it), no case-control difference. The d-maps correlate through
    shared noise (r well above 0; the spatial null alone calls two or more pairs significant),
    yet p = max(p_spatial_null, p_label_perm) > 0.05 for at least two of three pairs. The same
    cohort with one smooth effect planted in all three measures: every pair p < 0.05."""
    from calibration_sim import simulate_cohort

    from rviflow.cohort.stats import CohortSpec, run_colocalisation
    from rviflow.cohort.effects import effect_sizes
    from rviflow.io.regional import write_tsv_atomic

    img, labels = default_atlas()
    for planted, check in ((0.0, "null"), (0.6, "effect")):
        d = tmp_path / check
        d.mkdir()
        values, parts, design = simulate_cohort(n=120, n_sites=3, rho=0.5, planted_d=planted, seed=4)
        assert design["case"].sum() == 60 and parts["site"].nunique() == 3
        parts.to_csv(d / "participants.tsv", sep="\t", index=False)
        tables = []
        for m, v in values.items():
            v.rename_axis("participant_id").reset_index().assign(session="").to_csv(d / f"{m}.tsv", sep="\t", index=False)
            tables.append(str(d / f"{m}.tsv"))
        eff = pd.concat([effect_sizes(v, design, m) for m, v in values.items()])
        write_tsv_atomic(eff, d / "effect_sizes.tsv")
        spec = CohortSpec(str(d / "participants.tsv"))
        run_colocalisation(str(d / "effect_sizes.tsv"), img, labels, tables, list(values), spec, "brainsmash", 500,
                           0, d / "coloc.tsv", d / "null.tsv", d / "coupling.tsv", n_perm=1000)
        tab = pd.read_csv(d / "coloc.tsv", sep="\t")
        nulls = pd.read_csv(d / "null.tsv", sep="\t")
        coup = pd.read_csv(d / "coupling.tsv", sep="\t")
        assert len(tab) == 3 and (tab["n_perm"] == 1000).all() and (tab["n_subjects"] == 120).all()
        assert (tab["p"] == tab[["p_spatial_null", "p_label_perm"]].max(1)).all()
        assert nulls.groupby(["map_a", "map_b", "null"]).size().unstack().to_dict("list") == {"label": [1000] * 3,
                                                                                           "spatial": [500] * 3}
        assert coup["r"].mean() == pytest.approx(0.5, abs=0.1)   # the within-subject coupling
        # the observed maps are effect_sizes' d (complete data)
        d_reho = eff[eff["measure"] == "reho"].set_index("region")["d"]
        d_cbf = eff[eff["measure"] == "cbf"].set_index("region")["d"][d_reho.index]
        assert tab["r"].iloc[0] == pytest.approx(stats.pearsonr(d_reho, d_cbf)[0], abs=1e-5)
        if check == "null":
            assert tab["r"].mean() > 0.2 and (tab["p_spatial_null"] < 0.05).sum() >= 2, tab   # shared noise
            assert (tab["p"] > 0.05).sum() >= 2, tab
        else:
            assert (tab["p"] < 0.05).all(), tab
