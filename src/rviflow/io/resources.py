"""Offline resources of the transcriptomics stage, fetched once by the set-up step (setup.sh).

Nothing here runs at analysis or test time unless a resource is missing; every step skips what
already exists (idempotent). Two resources, both kept in a cache outside version control
(``$RVIFLOW_CACHE``, default ``<repo>/.cache/rviflow``):

- ``ahba/atlas-DK_gene_expression_data.csv``: AHBA expression for the Desikan-Killiany atlas
  (83 regions x 15,633 genes, abagen-processed) from the PyPI source package
  ``imaging-transcriptomics==1.1.15`` (GPLv3 data: fetched, never committed).
- ``gene-sets/*.gmt``: GO biological process / cellular component / molecular function
  (GO release 2022-07, annotations propagated to parent terms) and KEGG (the 2011-03-15 snapshot
  that Bioconductor still carries: outdated, named kegg_2011) from Debian's ``r-bioc-org.hs.eg.db``
  and ``r-bioc-go.db`` 3.16.0 (Artistic-2.0; their SQLite files are read directly, no R), plus
  ``rviflow_themes.gmt``: the study's themes (synaptic, inflammatory, neurovascular), each the
  union of the genes of the GO terms listed in :data:`THEMES` (written into the GMT).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
IT_VERSION = "1.1.15"
DK_TABLE_MEMBER = "imaging_transcriptomics/data/atlases/DK/atlas-DK_gene_expression_data.csv"
DK_TABLE = "ahba/atlas-DK_gene_expression_data.csv"
DEB_PACKAGES = ("r-bioc-org.hs.eg.db", "r-bioc-go.db")
#: built-in gene-set collections (name -> file under the cache's gene-sets/)
COLLECTIONS = ("go_bp", "go_cc", "go_mf", "kegg_2011", "rviflow_themes")
#: the study's themes, each defined by GO terms (genes annotated to them or their descendants)
THEMES = {
    "RVIFLOW_SYNAPTIC": ("GO:0045202", "GO:0099536", "GO:0007268", "GO:0050804", "GO:0048167"),
    "RVIFLOW_INFLAMMATORY": ("GO:0006954", "GO:0002526", "GO:0050727", "GO:0019221", "GO:0032640"),
    "RVIFLOW_NEUROVASCULAR": ("GO:0001525", "GO:0001974", "GO:0097746", "GO:0042310", "GO:0042311",
                              "GO:0060856", "GO:0035633", "GO:0150104"),
}
MIN_SET_SIZE = 3  # smaller GO / KEGG sets are not written (analysis filters again: min_size)


def cache_dir() -> Path:
    """Where offline resources live: ``$RVIFLOW_CACHE`` or ``<repo>/.cache/rviflow``."""
    return Path(os.environ.get("RVIFLOW_CACHE") or REPO / ".cache" / "rviflow")


def dk_expression_table() -> Path:
    """Path of the cached AHBA Desikan-Killiany expression table (may not exist yet)."""
    return cache_dir() / DK_TABLE


def gene_set_file(collection: str) -> Path:
    """Path of a built-in collection's GMT (may not exist yet)."""
    if collection not in COLLECTIONS:
        raise KeyError(f"unknown built-in gene-set collection {collection!r}; built-in: {', '.join(COLLECTIONS)}")
    return cache_dir() / "gene-sets" / f"{collection}.gmt"


def _log(msg: str) -> None:
    print(f"rviflow setup-resources: {msg}", file=sys.stderr, flush=True)


def fetch_dk_expression(dest: Path | None = None) -> Path:
    """Download imaging-transcriptomics' sdist once (pip, no install) and extract the DK table."""
    dest = Path(dest or dk_expression_table())
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    dl = cache_dir() / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    sdist = dl / f"imaging-transcriptomics-{IT_VERSION}.tar.gz"
    if not sdist.exists():
        _log(f"downloading imaging-transcriptomics=={IT_VERSION} (source package, 20 MB) for its AHBA DK table")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "--no-binary", ":all:", "--ignore-requires-python", f"imaging-transcriptomics=={IT_VERSION}",
                        "-d", str(dl)], check=True)
    with tarfile.open(sdist) as tar:
        member = tar.getmember(f"imaging-transcriptomics-{IT_VERSION}/{DK_TABLE_MEMBER}")
        src = tar.extractfile(member)
        tmp = dest.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            shutil.copyfileobj(src, fh)
        os.replace(tmp, dest)
    (dest.parent / "SOURCE.txt").write_text(
        f"{dest.name}: from the PyPI source package imaging-transcriptomics=={IT_VERSION}\n"
        f"({DK_TABLE_MEMBER}); AHBA microarray data processed with abagen for the\n"
        "Desikan-Killiany atlas (83 regions x 15,633 genes). GPLv3: do not redistribute with rviflow.\n")
    return dest


def _extract_debs(work: Path) -> tuple[Path, Path]:
    """apt-get download + dpkg-deb -x of the two Bioconductor packages; their SQLite files."""
    subprocess.run(["apt-get", "download", *DEB_PACKAGES], cwd=work, check=True, stdout=subprocess.DEVNULL)
    for deb in work.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True)
    lib = work / "root" / "usr" / "lib" / "R" / "site-library"
    return lib / "org.Hs.eg.db" / "extdata" / "org.Hs.eg.sqlite", lib / "GO.db" / "extdata" / "GO.sqlite"


def _write_gmt(path: Path, sets: list[tuple[str, str, list[str]]]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        for name, desc, genes in sets:
            fh.write("\t".join([name, desc, *genes]) + "\n")
    os.replace(tmp, path)


def build_gene_sets(org_sqlite: Path, go_sqlite: Path, out_dir: Path) -> dict[str, Path]:
    """GO BP/CC/MF, KEGG 2011 and rviflow theme GMTs (gene symbols) from the Bioconductor SQLite files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(f"file:{org_sqlite}?mode=ro", uri=True)
    con.execute(f"ATTACH DATABASE 'file:{go_sqlite}?mode=ro' AS godb")
    meta = dict(con.execute("SELECT name, value FROM metadata").fetchall())
    symbol = dict(con.execute("SELECT _id, symbol FROM gene_info").fetchall())
    term = dict(con.execute("SELECT go_id, term FROM godb.go_term").fetchall())
    written = {}
    go_genes: dict[str, set[str]] = {}
    for coll, table in (("go_bp", "go_bp_all"), ("go_cc", "go_cc_all"), ("go_mf", "go_mf_all")):
        genes: dict[str, set[str]] = {}
        for go_id, gid in con.execute(f"SELECT DISTINCT go_id, _id FROM {table}"):
            if gid in symbol:
                genes.setdefault(go_id, set()).add(symbol[gid])
        go_genes.update(genes)
        sets = [(f"{term.get(g, g)} ({g})", g, sorted(s)) for g, s in sorted(genes.items()) if len(s) >= MIN_SET_SIZE]
        written[coll] = out_dir / f"{coll}.gmt"
        _write_gmt(written[coll], sets)
    kegg: dict[str, set[str]] = {}
    for path_id, gid in con.execute("SELECT DISTINCT path_id, _id FROM kegg"):
        if gid in symbol:
            kegg.setdefault(path_id, set()).add(symbol[gid])
    date = meta.get("KEGGSOURCEDATE", "2011")
    written["kegg_2011"] = out_dir / "kegg_2011.gmt"
    _write_gmt(written["kegg_2011"], [(f"KEGG_2011_hsa{p}", f"KEGG pathway hsa{p}, snapshot {date} (outdated)",
                                       sorted(s)) for p, s in sorted(kegg.items()) if len(s) >= MIN_SET_SIZE])
    themes = []
    for name, ids in THEMES.items():
        genes = set().union(*(go_genes.get(g, set()) for g in ids))
        themes.append((name, "rviflow theme = " + "; ".join(f"{g} {term.get(g, '?')}" for g in ids), sorted(genes)))
    written["rviflow_themes"] = out_dir / "rviflow_themes.gmt"
    _write_gmt(written["rviflow_themes"], themes)
    con.close()
    (out_dir / "SOURCE.txt").write_text(
        "Gene sets built by `rviflow setup-resources` from Debian's r-bioc-org.hs.eg.db and r-bioc-go.db "
        "(Bioconductor 3.16.0, Artistic-2.0).\n"
        f"GO: {meta.get('GOSOURCEDATE', '?')} release, gene annotations from Entrez Gene "
        f"{meta.get('GOEGSOURCEDATE', '?')}, propagated to parent terms (go_*_all tables), all evidence codes; "
        f"gene symbols from Entrez Gene {meta.get('EGSOURCEDATE', '?')}.\n"
        f"KEGG: the {date} snapshot (KEGG is no longer freely redistributed; outdated, hence kegg_2011).\n"
        "rviflow_themes: unions of GO terms, listed in each set's description field.\n")
    return written


def ensure_gene_sets(out_dir: Path | None = None) -> dict[str, Path]:
    """The built-in GMTs, built once (downloads two Debian packages, ~50 MB, into a temp dir)."""
    out_dir = Path(out_dir or cache_dir() / "gene-sets")
    paths = {c: out_dir / f"{c}.gmt" for c in COLLECTIONS}
    if all(p.exists() for p in paths.values()):
        return paths
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise RuntimeError("building the GO / KEGG gene sets needs apt-get and dpkg-deb (Debian/Ubuntu); on other "
                           "systems configure transcriptomics.gene_sets with your own GMT files")
    _log("building GO / KEGG gene sets from Debian's r-bioc-org.hs.eg.db and r-bioc-go.db (~50 MB download)")
    with tempfile.TemporaryDirectory(prefix="rviflow-genesets-") as tmp:
        org, go = _extract_debs(Path(tmp))
        return build_gene_sets(org, go, out_dir)


def setup_resources() -> dict[str, Path]:
    """Fetch / build everything the transcriptomics stage needs offline; skip what exists."""
    out = {"dk_expression": fetch_dk_expression()}
    out.update(ensure_gene_sets())
    return out


_SETUP_HINT = "run `bash setup.sh` (or `rviflow setup-resources`) to fetch it offline"


def transcriptomics_inputs(tx: dict) -> tuple[str | list[int], dict[str, str]]:
    """Resolve config ``transcriptomics``: (expression table path, or the AHBA donors found for the
    abagen backend; {collection: GMT path}). Anything missing raises InputError naming the key."""
    from rviflow.errors import InputError
    from rviflow.transcriptomics.expression import find_donors

    if tx["backend"] == "abagen":
        source: str | list[int] = find_donors(tx["ahba_dir"])
    else:
        source = tx["expression_table"] or str(dk_expression_table())
        if not Path(source).exists():
            raise InputError(f"transcriptomics.expression_table: {source} not found; {_SETUP_HINT} (the AHBA "
                             "Desikan-Killiany table), set it to your regions x genes table, or use backend: abagen")
    files = {}
    for name in tx["collections"]:
        if name in tx["gene_sets"]:
            path, key = tx["gene_sets"][name], f"transcriptomics.gene_sets.{name}"
        elif name in COLLECTIONS:
            path, key = str(gene_set_file(name)), "transcriptomics.collections"
        else:
            raise InputError(f"transcriptomics.collections: {name!r} is neither built in ({', '.join(COLLECTIONS)}) "
                             "nor given a GMT file in transcriptomics.gene_sets")
        if not Path(path).exists():
            raise InputError(f"{key}: gene-set file {path} ({name}) not found; {_SETUP_HINT} (built-in GMTs), or set "
                             f"transcriptomics.gene_sets.{name} to a GMT file of yours")
        files[name] = path
    return source, files


def abagen_python(tx: dict, repo: str | Path, use_conda: bool) -> str:
    """Python of the abagen environment: transcriptomics.abagen_python, conda's, or .venv-abagen's."""
    from rviflow.errors import InputError

    if tx["abagen_python"]:
        return tx["abagen_python"]
    if use_conda:
        return "python"
    venv = Path(repo) / ".venv-abagen" / "bin" / "python"
    if not venv.exists():
        raise InputError("transcriptomics.backend abagen needs the abagen environment: run `bash setup.sh` (makes "
                         ".venv-abagen), use --software-deployment-method conda (envs/abagen.yaml), or set "
                         "transcriptomics.abagen_python")
    return str(venv)


def main() -> int:
    """Each resource on its own: one that cannot be fetched is reported and the others still are."""
    failed = []
    for what, step in (("AHBA DK expression table", fetch_dk_expression), ("gene sets", ensure_gene_sets)):
        try:
            step()
        except (subprocess.CalledProcessError, RuntimeError, OSError, KeyError, tarfile.TarError) as exc:
            _log(f"{what} failed: {exc}")
            failed.append(what)
    if failed:
        _log(f"missing: {', '.join(failed)}; the transcriptomics stage needs them unless configured with your "
             "own files (transcriptomics.expression_table, transcriptomics.gene_sets)")
        return 1
    _log(f"resources ready in {cache_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
