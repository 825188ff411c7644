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
