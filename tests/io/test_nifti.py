"""rviflow.io.nifti.read_data: the ISA-L reader of .nii.gz gives exactly the values nibabel's own
reader gives (the independent reference: ``np.asarray(nib.load(p).dataobj, dtype=np.float32)``)
for every storage nibabel handles (native / byte-swapped float32, scaled int16, uint8, float64,
NIfTI-2, header extensions), and a damaged file is a one-line InputError, never a wrong array."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from rviflow.errors import InputError
from rviflow.io.nifti import hold_series, load_4d, read_data, release_series

SHAPE = (7, 6, 5, 11)


def _nibabel(path):
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)


def _image(kind: str, rng) -> nib.Nifti1Image:
    data = rng.normal(1000, 50, SHAPE)
    affine = np.diag([2.4, 2.4, 2.4, 1])
    if kind == "float32":
        return nib.Nifti1Image(data.astype(np.float32), affine)
    if kind == "float32_big_endian":
        img = nib.Nifti1Image(data.astype(">f4"), affine)
        img.header.set_data_dtype(">f4")
        return img
    if kind == "int16_scaled":  # nibabel chooses scl_slope / scl_inter to fit the range
        img = nib.Nifti1Image(data.astype(np.float32), affine)
        img.header.set_data_dtype(np.int16)
        return img
    if kind == "int16_slope_one":  # integers stored as such (slope 1)
        img = nib.Nifti1Image(np.round(data).astype(np.int16), affine)
        img.header.set_slope_inter(1.0, 0.0)
        return img
    if kind == "uint8":
        return nib.Nifti1Image((data % 200).astype(np.uint8), affine)
    if kind == "float64":
        return nib.Nifti1Image(data, affine)
    if kind == "float32_extension":  # vox_offset beyond 352: an extension before the data
        img = nib.Nifti1Image(data.astype(np.float32), affine)
        img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"rviflow test extension" * 5))
        return img
    if kind == "nifti2":
        return nib.Nifti2Image(data.astype(np.float32), affine)
    raise ValueError(kind)


KINDS = ["float32", "float32_big_endian", "int16_scaled", "int16_slope_one", "uint8", "float64",
         "float32_extension", "nifti2"]


@pytest.mark.parametrize("kind", KINDS)
def test_gz_values_equal_nibabel(tmp_path, kind):
    rng = np.random.default_rng(KINDS.index(kind))
    path = tmp_path / f"{kind}_bold.nii.gz"
    nib.save(_image(kind, rng), path)
    ours = read_data(load_4d(path), path)
    ref = _nibabel(path)
    assert ours.dtype == np.float32 and ours.shape == SHAPE
    np.testing.assert_array_equal(ours, ref)
    if kind == "int16_scaled":
        assert nib.load(str(path)).dataobj.slope != 1.0  # the scaled path ran


def test_uncompressed_and_held(tmp_path):
    path = tmp_path / "sub-01_bold.nii"
    img = _image("float32", np.random.default_rng(3))
    nib.save(img, path)
    np.testing.assert_array_equal(read_data(load_4d(path), path), _nibabel(path))
    held = tmp_path / "never_written.nii"
    hold_series(held, img)
    try:
        assert load_4d(held) is img
        np.testing.assert_array_equal(read_data(load_4d(held), held), np.asarray(img.dataobj))
    finally:
        release_series()
    assert not held.exists()


def test_multimember_gzip(tmp_path):
    """Two concatenated gzip members (as `cat a.gz b.gz` or some writers produce) are one stream."""
    plain = tmp_path / "x.nii"
    nib.save(_image("float32", np.random.default_rng(4)), plain)
    raw = plain.read_bytes()
    path = tmp_path / "x_bold.nii.gz"
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    np.testing.assert_array_equal(read_data(load_4d(path), path), _nibabel(path))


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_gz_is_one_line_input_error(tmp_path, damage):
    path = tmp_path / "sub-07_task-rest_bold.nii.gz"
    data = np.random.default_rng(5).normal(1000, 50, (24, 24, 24, 20)).astype(np.float32)  # ~1 MB compressed
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    blob = bytearray(path.read_bytes())
    if damage == "truncated":
        blob = blob[: len(blob) // 2]
    else:  # flip bytes late in the deflate stream (the header, at its start, stays readable)
        at = len(blob) * 3 // 4
        blob[at:at + 64] = bytes(255 - b for b in blob[at:at + 64])
    path.write_bytes(bytes(blob))
    img = load_4d(path)  # the header is at the start: still readable
    with pytest.raises(InputError) as err:
        read_data(img, path)
    msg = str(err.value)
    assert "truncated or corrupt" in msg and str(path) in msg and "\n" not in msg


def test_shared_reads_load_a_file_once(tmp_path, monkeypatch):
    """share_reads (a chain making two series from one BOLD): the second read_data of the same
    file returns the first array, read-only, without reading the file again; off: read anew."""
    import rviflow.io.nifti as nifti

    path = tmp_path / "sub-01_bold.nii.gz"
    nib.save(_image("float32", np.random.default_rng(6)), path)
    calls = []
    real = nifti._read
    monkeypatch.setattr(nifti, "_read", lambda *a: calls.append(a[1]) or real(*a))
    nifti.share_reads(True)
    try:
        first, second = read_data(load_4d(path), path), read_data(load_4d(path), path)
        assert second is first and not first.flags.writeable and len(calls) == 1
    finally:
        nifti.share_reads(False)
    again = read_data(load_4d(path), path)
    assert len(calls) == 2 and again is not first
    np.testing.assert_array_equal(again, first)
