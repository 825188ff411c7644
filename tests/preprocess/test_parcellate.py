"""Parcellation: regional means against a plain loop; nearest-neighbour atlas resampling."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd

from rviflow.preprocess.parcellate import default_atlas, parcel_means, read_labels, resample_labels


def test_parcel_means_match_a_loop():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, (8, 9, 7))
    data = rng.normal(size=labels.shape)
    valid = rng.random(labels.shape) > 0.2
    table = pd.DataFrame({"index": [1, 2, 3, 4, 5, 9], "name": list("abcdez")})
    means, counts = parcel_means(data, labels, table, valid)
    for idx, name in zip(table["index"], table["name"]):
        sel = (labels == idx) & valid
        if sel.any():
            assert np.isclose(means[name], data[sel].mean())
        else:
            assert np.isnan(means[name])
        assert counts[name] == sel.sum()


def test_default_atlas_resampled_keeps_labels():
    img_path, lab_path = default_atlas()
    atlas = nib.load(img_path)
    labels = read_labels(lab_path)
    assert len(labels) == 83 and labels["name"].is_unique
    target = nib.Nifti1Image(np.zeros((37, 46, 39), np.int16), np.diag([4.0, 4, 4, 1]) @ np.eye(4))
    target.affine[:3, 3] = atlas.affine[:3, 3]
    target = nib.Nifti1Image(np.zeros((37, 46, 39), np.int16), np.c_[np.diag([4.0, 4, 4, 1])[:, :3],
                                                                       [*atlas.affine[:3, 3], 1]])
    grid = resample_labels(atlas, target)
    got = set(np.unique(grid)) - {0}
    assert got <= set(labels["index"]) and len(got) == 83  # no label lost or invented


def _slab(tmp_path, keep_fraction):
    """The default atlas on a 4 mm grid, a map equal to the label index (so a region's mean is its
    index exactly) and a valid mask keeping the front ``keep_fraction`` of the y axis."""
    img_path, lab_path = default_atlas()
    atlas = nib.load(img_path)
    target = nib.Nifti1Image(np.zeros((37, 46, 39), np.float32), np.c_[np.diag([4.0, 4, 4, 1])[:, :3],
                                                                         [*atlas.affine[:3, 3], 1]])
    grid = resample_labels(atlas, target)
    nib.save(nib.Nifti1Image(grid.astype(np.float32), target.affine), tmp_path / "map.nii.gz")
    valid = np.zeros(grid.shape, np.uint8)
    valid[:, int(grid.shape[1] * (1 - keep_fraction)):, :] = 1
    nib.save(nib.Nifti1Image(valid, target.affine), tmp_path / "valid.nii.gz")
    return grid, valid.astype(bool), img_path, lab_path


def test_a_slab_is_refused_by_default_and_parcellated_on_its_covered_regions_when_allowed(tmp_path):
    """Partial coverage (issue #15): the covered fraction of each region is its valid voxels ÷ its
    atlas voxels on the grid, counted here with a plain loop; regions under min_coverage are n/a,
    the others keep their exact mean; too few regions with data is refused naming the count and
    the config key."""
    import pytest

    from rviflow.errors import InputError
    from rviflow.preprocess.parcellate import parcellate_image

    grid, valid, img_path, lab_path = _slab(tmp_path, 0.3)
    args = (tmp_path / "map.nii.gz", img_path, lab_path, tmp_path / "valid.nii.gz")
    with pytest.raises(InputError, match=r"covers \d+ of 83 atlas regions.*atlas.min_regions"):
        parcellate_image(*args)  # the default min_regions 0.5
    means, counts, covered = parcellate_image(*args, min_regions=0.0, min_coverage=0.5)
    labels = read_labels(lab_path)
    for idx, name in zip(labels["index"], labels["name"]):
        frac = ((grid == idx) & valid).sum() / max((grid == idx).sum(), 1)
        assert np.isclose(covered[name], frac)
        if frac >= 0.5:
            assert means[name] == idx  # the map is the label index: the mean is exact
        else:
            assert np.isnan(means[name])
    assert 5 <= means.notna().sum() < 42
    whole = parcellate_image(tmp_path / "map.nii.gz", img_path, lab_path, None, min_regions=0.5, min_coverage=0.0)[0]
    assert whole.notna().all() and (whole.to_numpy() == labels["index"].to_numpy()).all()
