"""Seed-based functional connectivity: a seed's mean denoised series against every atlas region.

Per scan (the registry's ``compute`` of measure ``fc``, rules generated from
:data:`rviflow.measures.registry.FC`):

* the series is the denoised one ReHo reads (confounds regressed, band-passed, censored volumes
  dropped: correlation does not need contiguous volumes); voxels used = brain mask with a
  non-constant series;
* region series: the mean over each atlas region's voxels, on the atlas resampled to the BOLD
  grid by nearest neighbour, as :mod:`rviflow.preprocess.parcellate` does (see
  :func:`region_series` for why not nilearn's NiftiLabelsMasker);
* seed series: the mean over the seed's voxels, a seed being an atlas region (name or index in
  the atlas label table), a sphere of ``radius_mm`` around an MNI coordinate (voxel centres
  within the radius), or the voxels > 0 of the user's seed NIfTI (in the BOLD's space);
* Pearson r of every pair (nilearn ``ConnectivityMeasure``, kind correlation, with the plain
  empirical covariance: its default Ledoit-Wolf estimator shrinks r), Fisher z = artanh(r).

Outputs: the region x region Fisher-z matrix (``desc-<atlas>_connectivity.tsv``, diagonal and
regions without voxels n/a) and, per seed, one regional row ``fc_<seed>`` (the seed's own atlas
region left out: its z is infinite) that the cohort stage treats like ReHo's parcels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rviflow.errors import InputError

#: Fisher z of |r| = 1 is infinite: r is clipped here (z ~ 8.3) for numerically identical series
R_MAX = 1 - 1e-7


@dataclass(frozen=True)
class Seed:
    """One configured seed (``kind`` label / sphere / file)."""

    name: str
    kind: str
    index: int = 0  # atlas label index (label seeds)
    region: str = ""  # atlas region name (label seeds)
    coordinates: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mm, in the BOLD's space (sphere seeds)
    radius_mm: float = 0.0
    file: str = ""  # seed NIfTI (file seeds)

    def describe(self) -> str:
        if self.kind == "label":
            return f"atlas region {self.region}"
        if self.kind == "sphere":
            return f"{self.radius_mm:g} mm sphere at ({', '.join(f'{c:g}' for c in self.coordinates)})"
        return f"seed image {self.file}"


def atlas_desc(image: str) -> str:
    """BIDS ``desc`` naming the connectivity matrix of an atlas: ``desikankilliany`` for the
    default, else the file's ``atlas-`` entity or, without one, its alphanumeric stem."""
    if not image or image == "desikan_killiany" or "desikankilliany" in Path(image).name.replace("_", ""):
        return "desikankilliany"
    name = Path(image).name.split(".")[0]
    found = re.search(r"(?:^|_)atlas-([a-zA-Z0-9]+)", name)
    return found.group(1) if found else (re.sub(r"[^a-zA-Z0-9]", "", name) or "atlas")


def parse_seeds(seeds: dict, radius_mm: float, labels: pd.DataFrame) -> list[Seed]:
    """Check the config's seeds (``fc.seeds``: name -> {label | coordinates [+ radius_mm] | file})
    against the atlas label table (``index``, ``name``); InputError naming the seed otherwise.

    A label is a region name of the table (exact, else case-insensitive) or its integer index.
    """
    if not seeds:
        raise InputError("fc.enabled is true but fc.seeds is empty: name at least one seed")
    names = labels["name"].astype(str)
    index = labels["index"].astype(int)
    out = []
    for name, s in seeds.items():
        where = f"config fc.seeds.{name}"
        given = [k for k in ("label", "coordinates", "file") if s.get(k) not in (None, "", [])]
        if len(given) != 1:
            raise InputError(f"{where}: give exactly one of label, coordinates, file (got {', '.join(given) or 'none'})")
        if "label" in given:
            lab = s["label"]
            if isinstance(lab, (int, np.integer)) or str(lab).isdigit():
                hit = index == int(lab)
            else:
                hit = names == str(lab)
                if not hit.any():
                    hit = names.str.lower() == str(lab).lower()
            if not hit.any():
                import difflib

                close = difflib.get_close_matches(str(lab), list(names), n=3, cutoff=0.5)
                raise InputError(f"{where}: label {lab!r} is not in the atlas label table"
                                 + (f" (similar: {', '.join(close)})" if close else ""))
            i = int(np.flatnonzero(hit.to_numpy())[0])
            out.append(Seed(name, "label", index=int(index.iloc[i]), region=str(names.iloc[i])))
        elif "coordinates" in given:
            xyz = tuple(float(c) for c in s["coordinates"])
            r = float(s.get("radius_mm") or radius_mm)
            if len(xyz) != 3 or r <= 0:
                raise InputError(f"{where}: coordinates need 3 numbers (mm) and radius_mm > 0")
            out.append(Seed(name, "sphere", coordinates=xyz, radius_mm=r))
        else:
            path = str(s["file"])
            if not Path(path).is_file():
                raise InputError(f"{where}: seed file {path} does not exist")
            try:
                import nibabel as nib

                shape = nib.load(path).shape
            except Exception as exc:  # nibabel raises many types for corrupt files
                raise InputError(f"{where}: cannot read seed file {path} ({type(exc).__name__})") from None
            if len(shape) != 3 and not (len(shape) == 4 and shape[3] == 1):
                raise InputError(f"{where}: seed file {path} has shape {shape}, a 3-D mask is needed")
            out.append(Seed(name, "file", file=path))
    return out


def sphere_mask(center_mm, radius_mm: float, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """Boolean (X, Y, Z): voxels whose centre lies within ``radius_mm`` of ``center_mm`` (world mm).

    Written here, not nilearn's NiftiSpheresMasker: the seed's voxel count is needed for QC and
    the same boolean seed works for all three seed kinds; the sphere is one vectorised distance.
    """
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    return (np.linalg.norm(xyz - np.asarray(center_mm, float), axis=1) <= radius_mm).reshape(shape)


def seed_voxels(seed: Seed, labels_grid: np.ndarray, img) -> np.ndarray:
    """Boolean (X, Y, Z) of the seed's voxels on the grid of ``img`` (a 3-D reference image, e.g.
    an empty one on the BOLD grid), before the brain mask."""
    shape = labels_grid.shape
    if seed.kind == "label":
        return labels_grid == seed.index
    if seed.kind == "sphere":
        return sphere_mask(seed.coordinates, seed.radius_mm, shape, img.affine)
    import nibabel as nib

    # nearest neighbour by the two affines, written here: nilearn's resample_to_img spends ~0.5 s
    # per call in garbage collection (copy_img) for what is one matrix product and a lookup
    s = nib.load(seed.file)
    src = np.asarray(s.dataobj)
    src = src[..., 0] if src.ndim == 4 else src
    ijk = np.indices(shape).reshape(3, -1).T
    to_src = np.linalg.inv(s.affine) @ img.affine
    pos = np.rint(ijk @ to_src[:3, :3].T + to_src[:3, 3]).astype(np.int64)
    inside = np.all((pos >= 0) & (pos < np.array(src.shape[:3])), axis=1)
    out = np.zeros(ijk.shape[0], bool)
    out[inside] = src[tuple(pos[inside].T)] > 0
    return out.reshape(shape)


def fisher_z(r: np.ndarray) -> np.ndarray:
    """artanh(r), r clipped to +-:data:`R_MAX` (NaN stays NaN)."""
    return np.arctanh(np.clip(r, -R_MAX, R_MAX))


def correlation(series: np.ndarray) -> np.ndarray:
    """Pearson r (K, K) of the columns of ``series`` (T volumes, K signals) by nilearn's
    ConnectivityMeasure with the empirical covariance (no shrinkage)."""
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.covariance import EmpiricalCovariance

    cm = ConnectivityMeasure(cov_estimator=EmpiricalCovariance(), kind="correlation", standardize=False)
    r = cm.fit_transform([np.asarray(series, np.float64)])[0]
    np.fill_diagonal(r, 1.0)
    return r


def as_series(data: np.ndarray) -> tuple[np.ndarray, str]:
    """(voxels x T view of a 4-D array, the memory order it keeps): nibabel returns Fortran-ordered
    arrays, whose boolean-mask gather ``data[mask]`` copies slowly (6 s for a UK Biobank run);
    rows of this view are picked with flat indices in the same order instead."""
    order = "F" if data.flags.f_contiguous and not data.flags.c_contiguous else "C"
    return data.reshape(-1, data.shape[3], order=order), order


def region_series(data: np.ndarray, labels_grid: np.ndarray, valid: np.ndarray, label_index: np.ndarray) -> np.ndarray:
    """Mean series (T, R) of each atlas region (``label_index`` order) over the ``valid`` voxels
    of ``data`` (X, Y, Z, T); a region without valid voxels is a column of NaN.

    One weighted ``bincount`` of the labels per volume (float64 sums; a loop over volumes, not
    voxels). Written here rather than with nilearn's NiftiLabelsMasker, which computes the same
    means (tests/measures/test_connectivity.py checks them against plain boolean indexing) but
    spent most of its time in garbage collection (nilearn 0.13 ``safe_get_data`` calls
    gc.collect): 4 s of 7 on a 44 x 44 x 32 x 200 run (benchmarks/bench_fc.py).
    """
    series, order = as_series(data)
    vox = np.flatnonzero(valid.ravel(order=order))
    lab = labels_grid.ravel(order=order)[vox].astype(np.int64)
    label_index = np.asarray(label_index, np.int64)
    pos = np.full(max(int(lab.max(initial=0)), int(label_index.max())) + 1, -1)
    pos[label_index] = np.arange(len(label_index))
    which = pos[lab]  # voxel -> column (-1: background or a label not in the table)
    vox, which = vox[which >= 0], which[which >= 0]
    n_r = len(label_index)
    counts = np.bincount(which, minlength=n_r).astype(np.float64)
    out = np.empty((data.shape[3], n_r))
    for t in range(data.shape[3]):
        out[t] = np.bincount(which, weights=series[vox, t], minlength=n_r)
    with np.errstate(invalid="ignore", divide="ignore"):
        out /= counts
    out[:, counts == 0] = np.nan
    return out


def _covered_fraction(grid: np.ndarray, valid: np.ndarray, label_index: np.ndarray) -> np.ndarray:
    """(R,) share of each region's atlas voxels (on the BOLD grid) that have signal (0 if none)."""
    size = max(int(grid.max()), int(np.max(label_index))) + 1
    n_atlas = np.bincount(grid.ravel(), minlength=size)[label_index]
    n_valid = np.bincount(grid[valid].ravel(), minlength=size)[label_index]
    return np.where(n_atlas > 0, n_valid / np.maximum(n_atlas, 1), 0.0)


def seed_connectivity(regions: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fisher-z matrices from mean series: regions (T, R; NaN columns = no voxels) and seeds (T, S).

    Returns (R, R) region x region z (diagonal and regions without voxels NaN) and (S, R) seed x
    region z. Regions with a constant series count as without voxels.
    """
    n_r = regions.shape[1]
    ok = np.isfinite(regions).all(axis=0)
    ok[ok] = regions[:, ok].std(axis=0) > 0
    series = np.hstack([regions[:, ok], seeds])
    r = correlation(series)
    z = fisher_z(r)
    k = int(ok.sum())
    matrix = np.full((n_r, n_r), np.nan)
    matrix[np.ix_(ok, ok)] = z[:k, :k]
    np.fill_diagonal(matrix, np.nan)
    seed_z = np.full((seeds.shape[1], n_r), np.nan)
    seed_z[:, ok] = z[k:, :k]
    return matrix, seed_z


def compute_fc(bold_file: str, mask_file: str, outputs: dict[str, str], threads: int = 1, seeds: dict | None = None,
               radius_mm: float = 6.0, atlas_image: str = "", atlas_labels: str = "", min_regions: float = 0.5,
               min_coverage: float = 0.0) -> dict:
    """One scan's seed-based connectivity (the registry's ``compute`` for fc).

    Reads the denoised BOLD (its file name gives participant and session: it is rviflow's own
    derivative of the scan) and brain mask; writes ``outputs`` connectivity (region x region
    Fisher z TSV, first column ``region``), ``parcels_<seed>`` per seed (one row: participant_id,
    session, then the Fisher z with each region but the seed's own) and mask (voxels used).
    ``threads`` is unused: the work is two matrix products. Partial coverage as the parcellation of
    the other BOLD measures (config ``atlas.min_regions`` / ``atlas.min_coverage``): a region whose
    atlas voxels have signal in less than ``min_coverage`` of them is n/a; a scan with signal in
    fewer than ``min_regions`` of the regions fails. Returns the sidecar's Parameters and QC.
    """
    import nibabel as nib

    from rviflow.io.bids import parse_entities, save_nifti, write_tsv
    from rviflow.io.nifti import load_4d, load_mask, read_data
    from rviflow.preprocess.parcellate import read_labels, resample_labels

    table = read_labels(atlas_labels)
    parsed = parse_seeds(seeds or {}, radius_mm, table)
    img = load_4d(bold_file)
    mask = load_mask(mask_file, img.shape, img.affine)
    data = read_data(img, bold_file)
    if img.shape[3] < 3:
        raise InputError(f"{img.shape[3]} volumes: a correlation needs at least 3", path=str(bold_file))
    # non-constant series; max > min needs no full-size temporary (std would make one)
    valid = mask & (data.max(axis=3) > data.min(axis=3))
    ref = nib.Nifti1Image(np.zeros(img.shape[:3], np.uint8), img.affine)  # the BOLD grid, no data copied
    try:
        grid = resample_labels(nib.load(atlas_image), ref)
    except InputError as exc:
        raise InputError(exc.reason, path=str(bold_file)) from None
    idx = table["index"].to_numpy(int)
    names = table["name"].astype(str).to_numpy()
    regions = region_series(data, grid, valid, idx)
    covered = _covered_fraction(grid, valid, idx)
    regions[:, covered < max(min_coverage, 1e-12)] = np.nan
    n_with = int(np.isfinite(regions).all(axis=0).sum())
    if n_with == 0 or n_with < min_regions * len(idx):
        raise InputError(f"the scan has signal in {n_with} of {len(idx)} atlas regions (a partial-coverage acquisition, "
                         f"e.g. a slab, or not in the atlas space); at least {min_regions:.0%} are needed (to analyse "
                         "such scans on their covered regions, lower atlas.min_regions)", path=str(bold_file))
    seed_ts, n_vox = [], {}
    for s in parsed:
        vox = seed_voxels(s, grid, ref) & valid
        n_vox[s.name] = int(vox.sum())
        if not n_vox[s.name]:
            raise InputError(f"seed {s.name} ({s.describe()}) has no voxel inside the brain mask with signal",
                             path=str(bold_file))
        series, order = as_series(data)
        seed_ts.append(series[np.flatnonzero(vox.ravel(order=order))].mean(axis=0, dtype=np.float64))
    matrix, seed_z = seed_connectivity(regions, np.column_stack(seed_ts))
    ents = parse_entities(Path(bold_file).name)
    pid, ses = f"sub-{ents.get('sub', '')}", ents.get("ses", "")
    mat = pd.DataFrame(matrix, index=pd.Index(names, name="region"), columns=names)
    write_tsv(mat, outputs["connectivity"], index=True)
    for s, row in zip(parsed, seed_z):
        keep = names != s.region if s.kind == "label" else np.ones(len(names), bool)
        out = pd.DataFrame([row[keep]], columns=names[keep])
        out.insert(0, "session", ses)
        out.insert(0, "participant_id", pid)
        write_tsv(out, outputs[f"parcels_{s.name}"])
    save_nifti(nib.Nifti1Image(valid.astype(np.uint8), img.affine), outputs["mask"])
    empty = [str(n) for n in names[np.isnan(regions).all(axis=0)]]
    qc = dict(n_timepoints=int(img.shape[3]), n_voxels_mask=int(mask.sum()), n_regions=len(names),
              empty_regions=empty, seed_voxels=n_vox, covered_fraction=dict(zip(names, np.round(covered, 4))),
              mean_fc=float(np.nanmean(seed_z)) if np.isfinite(seed_z).any() else None)
    return dict(Parameters=dict(seeds={s.name: s.describe() for s in parsed}, atlas=str(atlas_image),
                                correlation="Pearson r of mean series, Fisher z = artanh(r)"), QC=qc)


def fc_measures(spec, section: dict, atlas_image: str = "", atlas_labels: str = "") -> list:
    """One measure ``fc_<seed>`` per configured seed (the registry's ``expand`` of fc), all run
    by one per-scan step whose outputs are the union: connectivity (matrix TSV) and json (its
    sidecar, named after the atlas), mask, and ``parcels_<seed>`` (one-row TSV per seed).
    Raises InputError naming the seed when the config is wrong (checked before any job)."""
    from dataclasses import replace

    from rviflow.measures.registry import Output
    from rviflow.preprocess.parcellate import read_labels

    seeds = parse_seeds(section.get("seeds") or {}, section["radius_mm"], read_labels(atlas_labels))
    desc = atlas_desc(atlas_image)
    outputs = {**spec.outputs, "connectivity": Output(desc, "connectivity", ".tsv"),
               "json": Output(desc, "connectivity", ".json"),
               **{f"parcels_{s.name}": Output(f"fc{s.name}", "parcels", ".tsv") for s in seeds}}
    return [replace(spec, name=f"{spec.name}_{s.name}", title=f"{spec.title}: {s.name}", base=spec.name,
                    outputs=outputs, parcel_map=f"parcels_{s.name}", expand="") for s in seeds]


def methods_fields(section: dict) -> dict:
    """``{seed_list}`` for the methods sentence: each seed and what it is."""
    parts = []
    for name, s in (section.get("seeds") or {}).items():
        if s.get("label") not in (None, ""):
            parts.append(f"{name} (atlas region {s['label']})")
        elif s.get("coordinates"):
            xyz = ", ".join(f"{float(c):g}" for c in s["coordinates"])
            parts.append(f"{name} ({float(s.get('radius_mm') or section['radius_mm']):g} mm sphere at "
                         f"MNI {xyz})")
        else:
            parts.append(f"{name} (user seed mask)")
    return dict(seed_list="; ".join(parts) or "none")
