"""ALFF / fALFF (rviflow.alff) against references written plainly here.

References: (1) a per-voxel discrete Fourier transform summed by hand (no FFT), (2) planted
sinusoids with known amplitude, (3) XCP-D's definition (scipy periodogram, sqrt, 2 x mean over
[closest bin to high-pass, closest bin to low-pass)), re-written from its documented recipe,
(4) C-PAC's (SD of the ideally band-passed series, Parseval).
"""

import numpy as np
import pytest
from scipy import signal

from rviflow.alff import alff_falff, alff_map, amplitude_spectrum, band_bins
from rviflow.errors import InputError


def dft_alff_one_voxel(x, tr, lo, hi):
    """ALFF, fALFF of one series by an explicit DFT sum (the textbook definition)."""
    n = len(x)
    x = np.asarray(x, float) - np.mean(x)
    t = np.arange(n)
    amps, freqs = [], []
    for k in range(1, n // 2 + 1):
        re = sum(x[j] * np.cos(2 * np.pi * k * j / n) for j in t)
        im = sum(x[j] * np.sin(2 * np.pi * k * j / n) for j in t)
        amps.append(2 * np.hypot(re, im) / n)
        freqs.append(k / (n * tr))
    in_band = [a for a, f in zip(amps, freqs) if lo - 1e-12 <= f <= hi + 1e-12]
    return np.mean(in_band), np.sum(in_band) / np.sum(amps)


def xcpd_alff_one_voxel(x, tr, high_pass, low_pass):
    """XCP-D's documented recipe: z-score, periodogram (one-sided, 'spectrum'), sqrt,
    2 x mean over bins [argmin|f - hp|, argmin|f - lp|), times the series' SD."""
    sd = np.std(x)
    z = (x - x.mean()) / sd
    f, p = signal.periodogram(z, 1 / tr, scaling="spectrum")
    i0, i1 = np.argmin(np.abs(f - high_pass)), np.argmin(np.abs(f - low_pass))
    return 2 * np.mean(np.sqrt(p[i0:i1])) * sd


def test_matches_plain_dft_per_voxel():
    rng = np.random.default_rng(0)
    for n, tr in ((120, 2.0), (97, 0.8), (64, 3.0)):
        x = rng.normal(size=(4, n)) * rng.uniform(0.5, 50, size=(4, 1)) + 100
        alff, falff = alff_falff(x, tr, (0.01, 0.08))
        for v in range(4):
            ref_a, ref_f = dft_alff_one_voxel(x[v], tr, 0.01, 0.08)
            assert alff[v] == pytest.approx(ref_a, rel=1e-9)
            assert falff[v] == pytest.approx(ref_f, rel=1e-9)


def test_planted_sinusoids_recovered():
    n, tr = 200, 2.0  # resolution 0.0025 Hz: 0.05 Hz and 0.2 Hz fall on bins
    t = np.arange(n) * tr
    sel = band_bins(n, tr)
    inside = 3.0 * np.sin(2 * np.pi * 0.05 * t + 0.3)
    outside = 5.0 * np.cos(2 * np.pi * 0.2 * t)
    alff, falff = alff_falff(np.vstack([inside, outside, inside + outside, np.full(n, 7.0)]), tr)
    assert alff[0] * sel.sum() == pytest.approx(3.0, rel=1e-9)  # all amplitude in one in-band bin
    assert falff[0] == pytest.approx(1.0)
    assert alff[1] == pytest.approx(0.0, abs=1e-9) and falff[1] == pytest.approx(0.0, abs=1e-9)
    assert alff[2] == pytest.approx(alff[0]) and falff[2] == pytest.approx(3 / 8)
    assert alff[3] == 0 and falff[3] == 0  # a constant voxel


def test_xcpd_definition_is_sqrt2_times_ours_on_the_same_bins():
    rng = np.random.default_rng(1)
    n, tr = 200, 2.0
    x = np.cumsum(rng.normal(size=(6, n)), axis=1) + rng.normal(size=(6, n)) * 3
    # XCP-D's [closest(0.01), closest(0.08)) = bins 0.01 .. 0.0775 Hz
    ours, _ = alff_falff(x, tr, (0.01, 0.0775))
    xcpd = np.array([xcpd_alff_one_voxel(v, tr, 0.01, 0.08) for v in x])
    np.testing.assert_allclose(xcpd, np.sqrt(2) * ours, rtol=1e-9)
    # hence identical zALFF across voxels
    z = lambda a: (a - a.mean()) / a.std(ddof=1)  # noqa: E731
    np.testing.assert_allclose(z(xcpd), z(ours), atol=1e-9)


def test_cpac_band_sd_is_rms_of_our_band_amplitudes():
    rng = np.random.default_rng(2)
    n, tr = 151, 2.0
    x = rng.normal(size=(3, n))
    freqs, amp = amplitude_spectrum(x, tr)
    sel = band_bins(n, tr)
    spec = np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1)
    keep = np.zeros(spec.shape[1], bool)
    keep[1:][sel] = True
    bandpassed = np.fft.irfft(np.where(keep, spec, 0), n=n, axis=1)
    np.testing.assert_allclose(bandpassed.std(axis=1), np.sqrt((amp[:, sel] ** 2).sum(axis=1) / 2), rtol=1e-9)


def test_falff_scale_free_alff_scales():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 150))
    a1, f1 = alff_falff(x, 2.0)
    a2, f2 = alff_falff(10 * x + 1000, 2.0)
    np.testing.assert_allclose(a2, 10 * a1, rtol=1e-9)
    np.testing.assert_allclose(f2, f1, rtol=1e-9)
    assert np.all((f1 > 0) & (f1 < 1))


def test_chunking_does_not_change_results():
    x = np.random.default_rng(4).normal(size=(1000, 80))
    a1, f1 = alff_falff(x, 2.5, chunk=4096)
    a2, f2 = alff_falff(x, 2.5, chunk=7)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(f1, f2)


def test_map_normalisation_and_mask():
    rng = np.random.default_rng(5)
    data = rng.normal(size=(6, 5, 4, 120)) + 50
    data[2, 2, 2] *= 4  # a high-ALFF voxel
    mask = np.ones((6, 5, 4), bool)
    mask[0] = False
    maps = alff_map(data, mask, 2.0)
    assert set(maps) == {"alff", "malff", "zalff", "falff", "mfalff", "zfalff"}
    for name, m in maps.items():
        assert m.shape == mask.shape and m.dtype == np.float32
        assert np.all(m[~mask] == 0), name
    assert maps["malff"][mask].mean() == pytest.approx(1.0, rel=1e-5)
    assert maps["zalff"][mask].mean() == pytest.approx(0.0, abs=1e-5)
    assert maps["zalff"][mask].std(ddof=1) == pytest.approx(1.0, rel=1e-5)
    assert np.argmax(maps["alff"]) == np.ravel_multi_index((2, 2, 2), mask.shape)


def test_bad_input():
    with pytest.raises(InputError, match="no frequency in 0.01-0.08 Hz"):
        alff_falff(np.random.default_rng(0).normal(size=(2, 6)), 1.0)  # bins 1/6, 1/3, 1/2 Hz
    with pytest.raises(InputError, match="4-D"):
        alff_map(np.zeros((3, 3, 3)), np.ones((3, 3, 3), bool), 2.0)
    with pytest.raises(InputError, match="constant inside the mask"):
        alff_map(np.ones((3, 3, 3, 100)), np.ones((3, 3, 3), bool), 2.0)
    with pytest.raises(InputError, match="repetition time"):
        band_bins(100, 0.0)
