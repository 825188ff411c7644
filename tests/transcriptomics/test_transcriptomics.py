"""Gene-map association: correlations as one matrix product, PLS, spatial null maps (variogram),
planted genes found through the whole abagen -> association path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rviflow.transcriptomics.nulls import distance_matrix, dk_sphere_centroids, null_maps, region_centroids, spin_nulls, variogram
from rviflow.preprocess.parcellate import DK_LABELS, default_atlas, read_labels
from rviflow.transcriptomics.association import (bh_fdr, bootstrap_pls1_z, correlate, gene_association, pls1_variance_explained,
                                     pls_regression, select_regions, spatial_p)


@pytest.fixture(scope="module")
def labels():
    return read_labels(DK_LABELS)


def test_correlate_is_pearson_for_every_map_and_gene():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 7))
    maps = rng.normal(size=(5, 40))
    r = correlate(x, maps)
    for k in range(5):
        for g in range(7):
            assert r[k, g] == pytest.approx(stats.pearsonr(maps[k], x[:, g])[0], abs=1e-12)
    np.testing.assert_allclose(correlate(x, maps[0]), r[0])


def test_spatial_p_counts_nulls_at_least_as_extreme_and_bh():
    r = np.array([0.5, -0.5, 0.1])
    null = np.array([[0.6, 0.2, 0.0], [-0.2, 0.5, -0.3], [0.1, 0.1, 0.05], [0.0, -0.7, 0.2]])
    np.testing.assert_allclose(spatial_p(r, null), [2 / 5, 3 / 5, 3 / 5])
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(1).uniform(size=50) ** 3
    np.testing.assert_allclose(bh_fdr(p), multipletests(p, method="fdr_bh")[1])


def test_pls_matches_scikit_learn():
    from sklearn.cross_decomposition import PLSRegression

    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 30))
    y = x[:, :3] @ [1.0, -0.5, 0.3] + rng.normal(0, 1, 60)
    w, ve = pls_regression(x, y, 3)
    ref = PLSRegression(n_components=3, scale=True).fit(x, y)
    for c in range(3):
        assert abs(w[:, c] @ ref.x_weights_[:, c]) == pytest.approx(1.0, abs=1e-8)
    # variance of y explained by each component, from sklearn's scores and y-loadings
    t = ref.x_scores_
    y_sk = (y - y.mean()) / y.std(ddof=1)  # sklearn scales with the n - 1 SD
    expl = (t * ref.y_loadings_[0]).var(0) / y_sk.var()
    np.testing.assert_allclose(ve, expl, rtol=1e-6)
    assert pls1_variance_explained(x, y[None, :])[0] == pytest.approx(ve[0])


def test_bootstrap_z_agrees_with_a_plain_resampling_loop():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 300))
    y = x[:, 0] + x[:, 1] + rng.normal(size=50)
    w1 = correlate(x, y)
    w1 /= np.linalg.norm(w1)
    z = bootstrap_pls1_z(x, y, w1, 500, seed=0)
    plain = []
    boot = np.random.default_rng(9)
    for _ in range(500):
        i = boot.integers(0, 50, 50)
        xs, ys = x[i] - x[i].mean(0), y[i] - y[i].mean()
        w = xs.T @ ys / np.sqrt((xs**2).sum(0) * (ys**2).sum())  # Pearson r of every gene, written out
        w /= np.linalg.norm(w)
        plain.append(w if w @ w1 > 0 else -w)
    z_plain = w1 / np.std(plain, axis=0, ddof=1)
    assert np.corrcoef(z, z_plain)[0, 1] > 0.99
    assert np.median(np.abs(z / z_plain - 1)) < 0.1
    assert abs(z[0]) > 3 and abs(z[1]) > 3 and np.median(np.abs(z[2:])) < 1.5


def _smooth_cortical_map(labels, seed=0):
    """A smooth random field on DK cortex: Gaussian-kernel (25 mm) smoothed noise + a little noise."""
    cortex = labels[labels["structure"] == "cortex"]
    cent = region_centroids(default_atlas()[0], cortex)
    d = distance_matrix(cent)
    rng = np.random.default_rng(seed)
    values = np.exp(-(d / 25.0) ** 2) @ rng.normal(size=len(d)) + 0.2 * rng.normal(size=len(d))
    return pd.Series(values, index=cent.index), cent


@pytest.mark.parametrize("method", ["brainsmash", "spin"])
def test_null_maps_preserve_spatial_autocorrelation(labels, method):
    """Variogram check: like the map's, the null maps' semivariance rises with distance and is
    low between near regions, while random permutations' is flat; each null is a full map."""
    brain_map, cent = _smooth_cortical_map(labels)
    n = 100
    nulls = null_maps(brain_map, method, default_atlas()[0], labels, n=n, seed=1)
    assert nulls.shape == (n, len(brain_map)) and np.isfinite(nulls).all()
    d = distance_matrix(cent)
    bins = np.quantile(d[np.triu_indices(len(d), 1)], np.linspace(0, 0.6, 7))
    rng = np.random.default_rng(0)
    perms = np.stack([rng.permutation(brain_map.to_numpy()) for _ in range(n)])
    # each set of maps normalised by its variance: the variogram's shape is what must be kept
    emp = variogram(brain_map.to_numpy(), d, bins) / brain_map.var(ddof=0)
    nul = variogram(nulls, d, bins).mean(0) / nulls.var(1).mean()
    perm = variogram(perms, d, bins).mean(0) / perms.var(1).mean()
    assert emp[0] < 0.5 * emp[-1]  # the test map itself is autocorrelated
    assert perm[0] > 0.95 * perm[-1]  # a permutation destroys that
    assert nul[0] < 0.8 * nul[-1]  # the null maps keep it
    near = slice(0, 2)
    assert np.abs(nul[near] - emp[near]).mean() < 0.7 * np.abs(perm[near] - emp[near]).mean()
    if method == "spin":  # a spin null is a permutation of the map
        np.testing.assert_allclose(np.sort(nulls, 1), np.sort(np.tile(brain_map.to_numpy(), (n, 1)), 1))


def test_spin_rejects_non_cortical_regions(labels):
    from rviflow.errors import InputError

    sphere = dk_sphere_centroids(labels)
    assert len(sphere) == 68 and set(sphere["hemisphere"]) == {"L", "R"}
    with pytest.raises(InputError, match="cortex_only"):
        spin_nulls(pd.Series([1.0, 2.0], index=["L_bankssts", "L_caudate"]), sphere, n=5)


def test_planted_genes_rank_top_with_spatial_p(synthetic_ahba, labels):
    """Synthetic donors -> abagen -> cortex regions -> BrainSMASH nulls -> genes table."""
    truth, planted_map, expr = synthetic_ahba
    left = select_regions(labels, expr, planted_map)  # default: left hemisphere (6 AHBA donors; right: 2)
    assert set(labels.set_index("name").loc[left, "hemisphere"]) == {"L"} and len(left) >= 25
    regions = select_regions(labels, expr, planted_map, cortex_only=True, left_only=False)
    assert all(labels.set_index("name").loc[regions, "structure"] == "cortex") and len(regions) >= 40
    nulls = null_maps(planted_map[regions], "brainsmash", default_atlas()[0], labels, n=500, seed=0)
    genes, pls = gene_association(expr.loc[regions], planted_map[regions], nulls, n_boot=300, seed=0)
    assert list(genes.columns) == ["gene", "r", "p_spatial", "q", "pls1_weight", "z"]
    planted = set(truth["planted"])
    top = genes.head(len(planted))
    assert len(planted & set(top["gene"])) >= len(planted) - 1
    assert (genes.set_index("gene").loc[sorted(planted), "p_spatial"] < 0.05).mean() >= 0.9
    others = genes[~genes["gene"].isin(planted)]
    assert (others["p_spatial"] < 0.05).mean() < 0.15  # no flood of false positives
    assert genes.set_index("gene").loc[sorted(planted), "z"].min() > 0  # PLS1 oriented like r
    assert pls["variance_explained"].iloc[0] > 0.3 and pls["p_spatial"].iloc[0] < 0.05


def test_read_map_from_effect_sizes_or_expected_pattern(tmp_path):
    from rviflow.errors import InputError
    from rviflow.transcriptomics.association import read_map

    eff = pd.DataFrame(dict(measure=["reho", "reho", "cbf"], region=["L_a", "L_b", "L_a"], d=[-0.5, 0.25, 1.0]))
    eff.to_csv(tmp_path / "effect_sizes.tsv", sep="\t", index=False)
    m = read_map("reho", str(tmp_path / "effect_sizes.tsv"))
    assert m.to_dict() == {"L_a": -0.5, "L_b": 0.25} and m.name == "reho"
    pd.DataFrame(dict(region=["L_a", "L_b"], d=[0.1, 0.2])).to_csv(tmp_path / "ep.tsv", sep="\t", index=False)
    assert read_map("rvi_reho", str(tmp_path / "ep.tsv")).to_dict() == {"L_a": 0.1, "L_b": 0.2}
    with pytest.raises(InputError, match="transcriptomics.maps"):
        read_map("thickness", str(tmp_path / "effect_sizes.tsv"))
