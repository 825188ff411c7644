"""Reading BOLD and mask images: one place for how rviflow gets voxel data off the disk.

Throughput (issue #19): a UK Biobank-sized BOLD (88 x 88 x 64 x 490 float32, ~270 MB .nii.gz) takes
nibabel 3.5-5 s to load, nearly all of it zlib inflating ~1 GB. :func:`read_data` inflates .nii.gz
with ISA-L (python-isal's ``isal_zlib.decompress``: the same DEFLATE stream, decoded ~3x faster
than zlib, 1.6 s, without holding the GIL) and returns the inflated bytes as the array where they already are one; the header,
dtype, byte order and scaling stay nibabel's (an image whose on-disk data are not native float32
without scaling goes through nibabel's own ArrayProxy on the inflated bytes), so the values are
the ones ``np.asarray(img.dataobj, dtype=np.float32)`` gives (tests/io/test_nifti.py). nibabel
itself offers only zlib (and indexed_gzip, zlib too) for .gz, hence this reader.

A fused chain (batch mode) keeps the denoised series in memory (:func:`hold_series`) for the
measures that read it; :func:`load_4d` returns the held image instead of reading a file.
"""

from __future__ import annotations

import io
from pathlib import Path

import nibabel as nib
import numpy as np

from rviflow.errors import InputError

#: series a fused chain holds in memory, by the path it would have been written to (hold_series)
_HELD: dict[str, nib.Nifti1Image] = {}
#: voxel data read while share_reads is on, by file
_READS: dict[str, np.ndarray] = {}
_SHARING = [False]


def hold_series(path: str | Path, img: nib.Nifti1Image) -> None:
    """Keep ``img`` in this process under ``path``: :func:`load_4d` returns it instead of reading
    the file (a denoised series shared by the BOLD measures of one scan, never written)."""
    _HELD[str(path)] = img


def release_series() -> None:
    """Forget every held series (end of a scan's chain)."""
    _HELD.clear()


def share_reads(on: bool) -> None:
    """While on, :func:`read_data` returns the (read-only) array it read before from the same
    file: a scan's chain making two series from its BOLD (denoised, regressed) loads it once.
    Off forgets what was read."""
    _SHARING[0] = bool(on)
    if not on:
        _READS.clear()


def load_4d(path: str | Path, what: str = "BOLD") -> nib.Nifti1Image:
    """Load a NIfTI (or the series held under that path) and check it is a readable 4-D image
    (InputError otherwise). The voxel data are read by :func:`read_data`."""
    if str(path) in _HELD:
        return _HELD[str(path)]
    try:
        img = nib.load(str(path))
        shape = img.shape
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"cannot read {what} image ({type(exc).__name__}: {exc})", path=str(path)) from None
    if len(shape) != 4:
        raise InputError(f"{what} image has {len(shape)} dimensions, a 4-D time series is needed", path=str(path))
    return img


def read_data(img: nib.Nifti1Image, path: str | Path, what: str = "BOLD") -> np.ndarray:
    """The image's voxel data as float32 (Fortran-ordered, as nibabel gives them); a truncated
    or corrupt file raises InputError. .nii.gz is inflated by ISA-L (module docstring); the
    array may then be read-only (the inflated bytes themselves): copy before writing into it."""
    if _SHARING[0] and str(path) in _READS:
        return _READS[str(path)]
    data = _read(img, path, what)
    if _SHARING[0] and str(path) not in _HELD:  # files only: a held series is freed on its own
        data.flags.writeable = False  # shared: nobody may change it under the next reader
        _READS[str(path)] = data
    return data


def _read(img: nib.Nifti1Image, path: str | Path, what: str) -> np.ndarray:
    try:
        if str(path).endswith(".gz") and isinstance(img.dataobj, nib.arrayproxy.ArrayProxy):
            return _read_gz(img, path)
        return np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # zlib / ISA-L / EOF / short-read errors from a damaged .nii.gz
        raise InputError(f"cannot read {what} voxel data, the file is truncated or corrupt "
                         f"({type(exc).__name__}: {exc})".replace("\n", " "), path=str(path)) from None


def _read_gz(img: nib.Nifti1Image, path: str | Path) -> np.ndarray:
    from isal import igzip, isal_zlib

    proxy = img.dataobj  # what nibabel itself would read: dtype (with byte order), offset, scaling
    dtype, offset = np.dtype(proxy.dtype), int(proxy.offset)
    nbytes = int(np.prod(proxy.shape, dtype=np.int64)) * dtype.itemsize
    with open(path, "rb") as fh:
        compressed = fh.read()
    # one-shot inflate: 1.6 s for 970 MB where ISA-L's streaming readers (igzip.open,
    # decompressobj) take 3.5-4 s and nibabel's zlib 3.5-5 s; isal_zlib.decompress releases the
    # GIL (a caller can overlap other work), igzip.decompress reads every gzip member but holds it
    raw = isal_zlib.decompress(compressed, wbits=31)
    if len(raw) < offset + nbytes:  # more than one gzip member (e.g. concatenated files)?
        raw = igzip.decompress(compressed)
    del compressed
    if len(raw) < offset + nbytes:
        raise EOFError(f"the file ends after {max(len(raw) - offset, 0):,} of the {nbytes:,} bytes of voxel data "
                       "its header declares")
    if dtype == np.dtype(np.float32) and float(proxy.slope) == 1.0 and float(proxy.inter) == 0.0:
        # native float32, unscaled: the inflated bytes are the array (no copy; read-only)
        return np.frombuffer(raw, np.float32, count=nbytes // 4, offset=offset).reshape(proxy.shape, order="F")
    # any other dtype, byte order or scaling: nibabel's own ArrayProxy on the inflated bytes
    holder = nib.FileHolder(fileobj=io.BytesIO(raw))
    return np.asarray(type(img).from_file_map({"image": holder}).dataobj, dtype=np.float32)


def load_mask(path: str | Path, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """Load a brain mask and check it is on the data grid."""
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise InputError(f"cannot read brain mask ({type(exc).__name__}: {exc})", path=str(path)) from None
    if data.shape[:3] != tuple(shape[:3]) or not np.allclose(img.affine, affine, atol=1e-3):
        raise InputError(f"brain mask grid {data.shape} does not match the BOLD grid {tuple(shape[:3])}",
                         path=str(path))
    mask = data > 0
    if not mask.any():
        raise InputError("brain mask is empty", path=str(path))
    return mask
