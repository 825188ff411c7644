"""ALFF / fALFF (rviflow.measures.alff) against references written plainly here.

References: (1) a per-voxel discrete Fourier transform summed by hand (no FFT), (2) planted
sinusoids with known amplitude, (3) XCP-D's definition (scipy periodogram, sqrt, 2 x mean over
[closest bin to high-pass, closest bin to low-pass)), re-written from its documented recipe,
(4) C-PAC's (SD of the ideally band-passed series, Parseval).
"""

import json

import numpy as np
import pytest
from scipy import signal

from rviflow.measures.alff import alff_falff, alff_map, amplitude_spectrum, band_bins
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


# --- through the workflow: rules generated from the registry (workflow/rules/measures.smk) ---------



def _plant_alff(cohort, rng):
    """Add band-limited (0.02-0.06 Hz) fluctuations to the MDD subjects' BOLD in the synthetic
    cohort's planted regions: ALFF (and fALFF) up there, nothing elsewhere."""
    from conftest import plant_slow_signal
    from rviflow.synth.cohort import PLANTED_REGIONS, synthetic_grid

    atlas, labels, _ = synthetic_grid()
    grid = np.asarray(atlas.dataobj)
    planted = np.isin(grid, labels.loc[labels["label"].isin(PLANTED_REGIONS), "index"].to_numpy())
    plant_slow_signal(cohort, planted, rng, sd=25.0, shared=False)  # BOLD SD ~20: a strong in-band boost
    return planted


@pytest.fixture(scope="module")
def alff_runs(tmp_path_factory):
    """8 synthetic subjects with an ALFF effect planted; ALFF enabled; per-scan and batch mode."""
    from conftest import MACHINERY_CONFIG, run_snakemake, write_config
    from rviflow.synth.cohort import write_cohort

    root = tmp_path_factory.mktemp("alff")
    cohort = write_cohort(root / "cohort", n_subjects=8, seed=11, n_sites=2, asl=False)
    _plant_alff(cohort, np.random.default_rng(11))
    settings = dict(MACHINERY_CONFIG, alff={"enabled": True})
    runs = {}
    for mode, extra in (("scan", {}), ("batch", {"batch_size": 4})):
        proc = run_snakemake(write_config(root / f"{mode}.yaml", cohort, root / mode, **settings, **extra), root)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        runs[mode] = (proc, root / mode)
    return runs, cohort


@pytest.mark.workflow
def test_planted_alff_effect_is_recovered(alff_runs):
    import pandas as pd

    from rviflow.synth.cohort import PLANTED_REGIONS

    runs, cohort = alff_runs
    out = runs["scan"][1]
    eff = pd.read_csv(out / "group" / "effect_sizes.tsv", sep="\t")
    labels = pd.read_csv(out / "group" / "parcels_alff.tsv", sep="\t").columns[2:]
    assert len(labels) == 83
    for m in ("alff", "falff"):
        e = eff[eff["measure"] == m]
        planted = e["region"].str.contains("|".join(PLANTED_REGIONS))
        assert planted.sum() == 2 * len(PLANTED_REGIONS)
        assert (e.loc[planted, "d"] > 1).all(), e.loc[planted, ["region", "d"]]
        assert e.loc[planted, "d"].min() > e.loc[~planted, "d"].quantile(0.9)
    sides = sorted(out.rglob("*_desc-alff_bold.json"))
    assert len(sides) == 8
    side = json.loads(sides[0].read_text())
    assert side["status"] == "ok" and side["Parameters"]["band_hz"] == [0.01, 0.08]
    assert side["QC"]["n_band_bins"] == 15  # 100 volumes, TR 2 s: 0.01-0.08 Hz in 0.005 Hz steps
    assert not list(out.rglob("*_desc-regressed_bold.nii*"))  # a temp file
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t")
    assert {"regress", "alff", "parcellate_alff", "parcellate_falff"} <= set(qc["step"])
    html = (out / "report" / "rviflow_report.html").read_text()
    assert "Effect sizes: ALFF" in html and "Effect sizes: fALFF" in html
    assert "amplitude of low-frequency fluctuations (ALFF)" in html and "Zou QH" in html and "Zang YF" in html


@pytest.mark.workflow
def test_alff_series_is_not_band_passed(alff_runs):
    """The regressed series keeps its spectrum above 0.08 Hz (fALFF's denominator needs it)."""
    import nibabel as nib

    out = alff_runs[0]["scan"][1]
    falff = np.asarray(nib.load(next(out.rglob("*_desc-falff_bold.nii.gz"))).dataobj)
    mask = np.asarray(nib.load(next(out.rglob("*_desc-alff_mask.nii.gz"))).dataobj) > 0
    # white noise: ~ (share of bins in band) = 15 / 50; band-passed, fALFF would be ~1
    assert 0.2 < np.median(falff[mask]) < 0.5


@pytest.mark.workflow
def test_alff_batch_mode_equals_per_scan_mode(alff_runs):
    from conftest import assert_same_outputs, finished_jobs

    runs, _ = alff_runs
    proc, _ = runs["batch"]
    rules = [r for r, _ in finished_jobs(proc.stdout + proc.stderr)]
    # ALFF rides in ReHo's chain job: one load of the BOLD per scan for every BOLD measure
    assert rules.count("reho_batch") == 2 and not {"alff_batch", "alff", "regress"} & set(rules)
    scan_rules = {r for r, _ in finished_jobs(runs["scan"][0].stdout + runs["scan"][0].stderr)}
    assert "reho_scan" in scan_rules and not {"alff_scan", "alff", "regress", "denoise", "reho"} & scan_rules
    compared = assert_same_outputs(runs["scan"][1], runs["batch"][1])
    assert {"group/parcels_alff.tsv", "group/parcels_falff.tsv"} <= compared
    assert sum(f.endswith("_desc-zfalff_bold.nii.gz") for f in compared) == 8
