"""Denoising: planted confound and out-of-band signals are removed, in-band signal kept."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rviflow.preprocess.denoise import denoise_bold
from rviflow.errors import InputError
from rviflow.synth.cohort import _confounds


def _write(tmp_path, n_t=200, tr=2.0, scrub_spikes=()):
    rng = np.random.default_rng(0)
    conf = _confounds(rng, n_t, 0.05)
    for i in scrub_spikes:
        conf.loc[i, "framewise_displacement"] = 2.0
    t = np.arange(n_t) * tr
    inband = np.sin(2 * np.pi * 0.04 * t)
    slow = np.sin(2 * np.pi * 0.002 * t) * 5
    fast = np.sin(2 * np.pi * 0.2 * t)
    motion = conf["trans_x"].to_numpy()
    motion = (motion - motion.mean()) / motion.std()
    shape = (4, 4, 3)
    data = np.zeros(shape + (n_t,), np.float32)
    data[0] = 100 + 3 * motion            # pure motion
    data[1] = 100 + inband                 # in-band neural-like signal
    data[2] = 100 + slow + fast + inband   # drift + fast + in-band
    data[3] = 100 + rng.normal(0, 1, (4, 3, n_t))
    stem = tmp_path / "sub-01_task-rest"
    bold = f"{stem}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), bold)
    (tmp_path / "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.json").write_text(
        json.dumps({"RepetitionTime": tr}))
    mask = f"{stem}_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(shape, np.uint8), np.eye(4)), mask)
    conf.to_csv(f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a")
    (tmp_path / "sub-01_task-rest_desc-confounds_timeseries.json").write_text("{}")
    return bold, mask, inband


def test_confounds_and_out_of_band_removed(tmp_path):
    bold, mask, inband = _write(tmp_path)
    img, qc = denoise_bold(bold, mask)
    out = np.asarray(img.dataobj)
    assert qc["n_confounds"] == 26 and qc["n_volumes_kept"] == 200 and qc["tr_s"] == 2.0
    assert np.abs(out[0]).max() < 0.05 * 3  # motion-driven voxel cleaned to ~0
    # in-band signal survives (26 random-walk regressors absorb some of it by chance)
    assert np.corrcoef(out[1, 0, 0], inband)[0, 1] > 0.6
    # the 0.002 Hz drift (5x larger) and the 0.2 Hz sine are removed: same result as without them
    # (up to filter edge effects: compare the shapes)
    assert np.corrcoef(out[2, 0, 0], out[1, 0, 0])[0, 1] > 0.95


def test_scrubbing_removes_high_motion_volumes(tmp_path):
    bold, mask, _ = _write(tmp_path, scrub_spikes=(50, 120))
    img, qc = denoise_bold(bold, mask, scrub=True, scrub_min_segment=0)
    assert qc["n_volumes_kept"] == 198 and img.shape[3] == 198


def test_too_few_volumes_and_3d_input_are_clear_errors(tmp_path):
    bold, mask, _ = _write(tmp_path, n_t=40)
    with pytest.raises(InputError, match="only 40 volumes left after censoring"):
        denoise_bold(bold, mask, min_timepoints=50)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.float32), np.eye(4)), bold)
    with pytest.raises(InputError, match="3 dimensions"):
        denoise_bold(bold, mask)


def test_confounds_missing_columns_named(tmp_path):
    bold, mask, _ = _write(tmp_path)
    conf = tmp_path / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    pd.read_csv(conf, sep="\t").drop(columns=["white_matter"]).to_csv(conf, sep="\t", index=False)
    with pytest.raises(InputError, match="confounds_timeseries.tsv: confounds unusable"):
        denoise_bold(bold, mask)


# --- float32 operator path (issue #19) against nilearn's clean on the signals themselves ----------

def _plain_clean(bold, scrub):
    """Reference: today's path, nilearn's clean on the (T, V) signals in float64, cast to float32."""
    import warnings

    from nilearn.interfaces.fmriprep import load_confounds
    from nilearn.signal import clean

    img = nib.load(bold)
    data = np.asarray(img.dataobj, dtype=np.float32)
    strategy = ("motion", "wm_csf") + (("scrub",) if scrub else ())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conf, sample_mask = load_confounds(bold, strategy=strategy, motion="full", wm_csf="basic", scrub=5,
                                           fd_threshold=0.5, std_dvars_threshold=1.5, demean=True)
        out = clean(data.reshape(-1, data.shape[-1]).T.astype(np.float64), confounds=conf.to_numpy(),
                    sample_mask=sample_mask, t_r=2.0, low_pass=0.08, high_pass=0.01, detrend=True, standardize=None,
                    standardize_confounds=True, filter="butterworth")
    return out.astype(np.float32).T.reshape(data.shape[:3] + (-1,))


@pytest.mark.parametrize("scrub", [False, True])
def test_float32_operator_matches_nilearn_clean_within_float32_rounding(tmp_path, scrub):
    """denoise_bold cleans with clean(I) @ signals in float32 (independent reference: nilearn's clean
    applied to the signals in float64, today's path). Raw intensities ~100 with fluctuations of a
    few units: the difference stays below 1e-5 of each voxel's raw SD over time (float32 rounding
    of the centred series; a voxel cleaned to ~0 is compared at its input scale); with scrubbing
    the censored volumes and their interpolation agree too."""
    bold, mask, _ = _write(tmp_path, scrub_spikes=(50, 51, 120) if scrub else ())
    img, qc = denoise_bold(bold, mask, scrub=scrub)
    new = np.asarray(img.dataobj)
    ref = _plain_clean(bold, scrub)
    assert new.dtype == np.float32 and new.shape == ref.shape
    assert (qc["n_volumes_kept"] < 200) == scrub
    raw_sd = np.asarray(nib.load(bold).dataobj, dtype=np.float64).std(axis=-1)
    rel = np.abs(new - ref).max(axis=-1) / raw_sd
    assert rel.max() < 1e-5, rel.max()


def test_clean_operator_is_linear_in_the_signals():
    """clean(I) @ X == clean(X) for random X (float64): the property the float32 path rests on."""
    import warnings

    from nilearn.signal import clean

    from rviflow.preprocess.denoise import clean_operator

    rng = np.random.default_rng(3)
    conf = rng.standard_normal((150, 8)).cumsum(0)
    x = 50 + rng.standard_normal((150, 40)).cumsum(0)
    keep = np.setdiff1d(np.arange(150), [30, 31, 32, 90])
    op = clean_operator(150, conf, keep, 1.5, 0.1, 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = clean(x, confounds=conf, sample_mask=keep, t_r=1.5, low_pass=0.1, high_pass=0.01, detrend=True,
                    standardize=None, standardize_confounds=True, filter="butterworth")
    assert op.shape == (len(keep), 150)
    np.testing.assert_allclose(op @ x, ref, atol=1e-9 * np.abs(x).max())


def test_cleaning_product_does_not_depend_on_threads():
    """apply_operator works in fixed voxel blocks: 1, 2 or 3 threads give the same bits (a batch
    job and a per-scan job write identical files), and equal op @ signals to float32 rounding."""
    from rviflow.preprocess.denoise import _BLOCK, apply_operator

    rng = np.random.default_rng(1)
    op = rng.standard_normal((50, 60)).astype(np.float32)
    signals = np.asfortranarray(rng.standard_normal((60, 2 * _BLOCK + 123)).astype(np.float32))
    one = apply_operator(op, signals, 1)
    for threads in (2, 3):
        assert np.array_equal(apply_operator(op, signals, threads), one)
    np.testing.assert_allclose(one, op.astype(np.float64) @ signals.astype(np.float64), atol=1e-4)
