"""Regional gene expression (regions x genes) from the Allen Human Brain Atlas, on rviflow's atlas.

Two backends give the same table (index = atlas region names, columns = gene symbols):

- ``table``: a ready regions x genes CSV/TSV (by default the abagen-processed AHBA expression for
  Desikan-Killiany that ``rviflow setup-resources`` caches); its region labels are mapped onto the
  atlas names and any label that does not map stops the run (:func:`read_expression_table`).
- ``abagen``: :func:`abagen.get_expression_data` on the pipeline's atlas and a local AHBA
  download (:func:`abagen_expression`). abagen 0.1.3 needs numpy < 2 and pandas < 2, so this
  runs in its own environment (``.venv-abagen`` from setup.sh, or envs/abagen.yaml); this module
  therefore keeps to what pandas 1.5 and 2.x both do and imports nothing else from rviflow
  except errors.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from rviflow.errors import InputError

#: abagen's recommended defaults (Markello et al. 2021, eLife), exposed as transcriptomics.abagen
ABAGEN_DEFAULTS = dict(ibf_threshold=0.5, probe_selection="diff_stability", lr_mirror=None, missing=None,
                       tolerance=2, sample_norm="srs", gene_norm="srs", norm_matched=True, region_agg="donors",
                       agg_metric="mean", corrected_mni=True, reannotated=True)
AHBA_HELP = ("download the AHBA microarray data once (4 GB) with network access, e.g. "
             "`python -c \"import abagen; abagen.fetch_microarray(data_dir='DIR', donors='all')\"` "
             "(or from https://human.brain-map.org/static/download), then set transcriptomics.ahba_dir: DIR "
             "(it must hold DIR/microarray/normalized_microarray_donorNNNN/ with MicroarrayExpression.csv, "
             "Probes.csv, SampleAnnot.csv, Ontology.csv and PACall.csv)")
AHBA_FILES = ("MicroarrayExpression.csv", "Probes.csv", "SampleAnnot.csv", "Ontology.csv", "PACall.csv")


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(s).lower())


def region_lookup(labels: pd.DataFrame) -> dict[str, str]:
    """Accepted spellings of each atlas region -> its atlas name.

    An atlas name (``L_bankssts``) is accepted as is, case and punctuation aside, and so is
    hemisphere + label in either order (``lh-bankssts``, ``bankssts_left``); a label present
    once in the atlas (``brainstem``) is accepted alone.
    """
    look: dict[str, str] = {}
    counts = labels["label"].map(_norm).value_counts() if "label" in labels else pd.Series(dtype=int)
    hemi_words = {"L": ("l", "lh", "left"), "R": ("r", "rh", "right"), "B": ("b", "bh", "both")}
    for row in labels.itertuples():
        look[_norm(row.name)] = row.name
        lab = _norm(getattr(row, "label", row.name))
        if counts.get(lab, 0) == 1:
            look.setdefault(lab, row.name)
        for w in hemi_words.get(getattr(row, "hemisphere", ""), ()):
            look.setdefault(w + lab, row.name)
            look.setdefault(lab + w, row.name)
    return look


def map_region_labels(table_labels, labels: pd.DataFrame, source: str) -> list[str]:
    """Atlas names of a table's region labels; InputError listing every label that does not map."""
    look = region_lookup(labels)
    mapped = [look.get(_norm(x)) for x in table_labels]
    bad = [str(x) for x, m in zip(table_labels, mapped) if m is None]
    if bad:
        raise InputError(f"{len(bad)} region label(s) of the expression table match no region of the atlas "
                         f"({', '.join(bad[:8])}{', ...' if len(bad) > 8 else ''}); atlas regions are e.g. "
                         f"{', '.join(labels['name'].astype(str)[:3])}: use the same atlas for the table and the "
                         "pipeline (atlas.image / atlas.labels)", path=source)
    dup = pd.Series(mapped)[pd.Series(mapped).duplicated()]
    if len(dup):
        raise InputError(f"several rows of the expression table map to atlas region {dup.iloc[0]}", path=source)
    return mapped


def read_expression_table(path: str | Path, labels: pd.DataFrame) -> pd.DataFrame:
    """A regions x genes expression table, indexed by atlas region name (atlas order).

    Accepted layouts: a region-name column (``Region``, ``region``, ``name`` or ``label`` with
    names) plus one numeric column per gene; or an integer ``label``/``id``/``index`` column with
    the atlas indices. When both are present they must agree. Atlas regions without a row get
    NaN (e.g. no AHBA sample there); a row that matches no atlas region is an error.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("expression table not found; set transcriptomics.expression_table to a regions x genes "
                         "CSV/TSV, or run `bash setup.sh` (or `rviflow setup-resources`) to fetch the AHBA "
                         "Desikan-Killiany table", path=str(path))
    sep = "\t" if path.suffix in (".tsv", ".txt") else ","
    df = pd.read_csv(path, sep=sep, encoding="utf-8-sig")
    cols = {c.lower(): c for c in df.columns}
    name_col = next((cols[c] for c in ("region", "name", "region_name") if c in cols), None)
    id_col = next((cols[c] for c in ("label", "id", "index") if c in cols
                   and pd.api.types.is_integer_dtype(df[cols[c]])), None)
    if name_col is None and "label" in cols and cols["label"] != id_col:
        name_col = cols["label"]
    if name_col is None and id_col is None:
        raise InputError("expression table needs a region column (Region / name) or an atlas index column "
                         "(label / id)", path=str(path))
    by_index = dict(zip(labels["index"].astype(int), labels["name"].astype(str)))
    if name_col is not None:
        regions = map_region_labels(df[name_col].tolist(), labels, str(path))
        if id_col is not None:
            wrong = [(i, r) for i, r in zip(df[id_col], regions) if by_index.get(int(i)) != r]
            if wrong:
                raise InputError(f"expression table row {wrong[0][0]} is {wrong[0][1]} by name but atlas index "
                                 f"{wrong[0][0]} is {by_index.get(int(wrong[0][0]))}: the table uses another "
                                 "label order than the atlas", path=str(path))
    else:
        missing = [i for i in df[id_col] if int(i) not in by_index]
        if missing:
            raise InputError(f"expression table has atlas indices {missing[:8]} that the atlas does not have",
                             path=str(path))
        regions = [by_index[int(i)] for i in df[id_col]]
    genes = df.drop(columns=[c for c in (name_col, id_col) if c is not None])
    nonnum = [c for c in genes.columns if not pd.api.types.is_numeric_dtype(genes[c])]
    if nonnum:
        raise InputError(f"expression table column {nonnum[0]!r} is not numeric", path=str(path))
    genes.index = pd.Index(regions, name="region")
    return genes.reindex(labels["name"].astype(str)).rename_axis("region")


def find_donors(ahba_dir: str | Path) -> list[int]:
    """AHBA donor IDs with all five microarray files under ``ahba_dir/microarray``."""
    if not ahba_dir:
        raise InputError(f"transcriptomics.ahba_dir is not set (backend abagen): {AHBA_HELP}")
    root = Path(ahba_dir) / "microarray"
    donors = []
    for d in sorted(root.glob("normalized_microarray_donor*")):
        m = re.fullmatch(r"normalized_microarray_donor(\d+)", d.name)
        if m and all((d / f).exists() for f in AHBA_FILES):
            donors.append(int(m.group(1)))
    if not donors:
        raise InputError(f"transcriptomics.ahba_dir has no complete AHBA donor folder under {root}: {AHBA_HELP}",
                         path=str(ahba_dir))
    return donors


def abagen_atlas_info(labels: pd.DataFrame) -> pd.DataFrame:
    """abagen's atlas_info (id, label, hemisphere, structure) from an rviflow label table."""
    need = {"index", "label", "hemisphere", "structure"}
    if not need <= set(labels.columns):
        raise InputError(f"the abagen backend needs atlas label columns {sorted(need)} (hemisphere L/R/B, structure "
                         f"cortex / subcortex/brainstem); the label table has {sorted(labels.columns)}")
    return pd.DataFrame(dict(id=labels["index"].astype(int), label=labels["label"], hemisphere=labels["hemisphere"],
                             structure=labels["structure"]))


def abagen_expression(atlas_image: str | Path, labels: pd.DataFrame, ahba_dir: str | Path, options: dict | None = None,
                      n_proc: int = 1) -> tuple[pd.DataFrame, list[int]]:
    """regions x genes from abagen.get_expression_data on the atlas, with every donor in ``ahba_dir``.

    ``options`` override :data:`ABAGEN_DEFAULTS`. Returns (table indexed by atlas name, donors used).
    """
    import abagen

    donors = find_donors(ahba_dir)
    opts = {**ABAGEN_DEFAULTS, **(options or {})}
    expr = abagen.get_expression_data(str(atlas_image), abagen_atlas_info(labels), donors=[str(d) for d in donors],
                                      data_dir=str(ahba_dir), n_proc=n_proc, verbose=0, **opts)
    names = dict(zip(labels["index"].astype(int), labels["name"].astype(str)))
    expr.index = pd.Index([names[int(i)] for i in expr.index], name="region")
    expr.columns.name = None
    return expr.reindex(labels["name"].astype(str)).rename_axis("region"), donors


def write_expression(expr: pd.DataFrame, path: str | Path) -> None:
    """regions x genes TSV (region column first); NaN as n/a."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    expr.rename_axis("region").to_csv(tmp, sep="\t", float_format="%.6g", na_rep="n/a")
    tmp.replace(path)


def read_expression(path: str | Path) -> pd.DataFrame:
    """A table written by :func:`write_expression`."""
    return pd.read_csv(path, sep="\t", index_col="region", na_values="n/a")



def import_expression_table(table: str, atlas_labels: str, out: str) -> None:
    """A user's regional expression table checked against the atlas labels and written as the
    pipeline's expression table (:func:`read_expression_table`, :func:`write_expression`)."""
    from rviflow.preprocess.parcellate import read_labels

    expr = read_expression_table(table, read_labels(atlas_labels))
    write_expression(expr, out)
    print(f"expression: {expr.shape[0]} regions x {expr.shape[1]} genes from {table}")
