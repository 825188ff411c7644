"""Gene-set enrichment with local GMTs: planted set found, deterministic, offline, clear errors;
the built-in GO / KEGG / theme GMTs that setup.sh builds."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from rviflow.enrichment import ENRICHMENT_COLUMNS, enrichment, read_gmt
from rviflow.errors import InputError


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Enrichment must never call out (gseapy can query Enrichr / MSigDB when given names)."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted during an enrichment test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _gmt(path, sets):
    path.write_text("".join(f"{name}\tsynthetic\t" + "\t".join(genes) + "\n" for name, genes in sets.items()))
    return path


@pytest.fixture(scope="module")
def synthetic_genes(synthetic_ahba):
    """Genes table of the synthetic donors against the planted map (as test_transcriptomics)."""
    from rviflow.nulls import null_maps
    from rviflow.parcellate import DK_LABELS, default_atlas, read_labels
    from rviflow.transcriptomics import gene_association, select_regions

    truth, planted_map, expr = synthetic_ahba
    labels = read_labels(DK_LABELS)
    regions = select_regions(labels, expr, planted_map)
    nulls = null_maps(planted_map[regions], "spin", default_atlas()[0], labels, n=200, seed=0)
    genes, _ = gene_association(expr.loc[regions], planted_map[regions], nulls, n_boot=200)
    return truth, genes


def test_planted_gene_set_is_the_top_enrichment(synthetic_genes, tmp_path):
    truth, genes = synthetic_genes
    rng = np.random.default_rng(0)
    others = [g for g in truth["genes"] if g not in truth["planted"]]
    sets = {f"RANDOM_{i:02d}": list(rng.choice(others, 20, replace=False)) for i in range(30)}
    # a decoy half planted, half random: must rank below the fully planted set
    sets["HALF_PLANTED"] = truth["planted"][:10] + list(rng.choice(others, 10, replace=False))
    sets["PLANTED"] = truth["planted"]
    gs = read_gmt(_gmt(tmp_path / "synthetic.gmt", sets))
    res = enrichment(genes, gs, rank_by="r", n_perm=200, seed=1, min_size=15, max_size=500, n_top=30)
    assert list(res.columns) == ENRICHMENT_COLUMNS
    assert res["term"].iloc[0] == "PLANTED"
    top = res.set_index("term").loc["PLANTED"]
    assert top["nes"] > 0 and top["p"] < 0.05 and top["q"] < 0.05 and top["size"] == 20
    assert set(top["leading_edge_genes"].split(";")) <= set(truth["planted"])
    assert res.set_index("term").loc["HALF_PLANTED", "nes"] < top["nes"]
    assert (res[res["term"].str.startswith("RANDOM")]["q"] > 0.05).mean() > 0.8
    ora = res.dropna(subset=["ora_p"]).sort_values("ora_p")
    assert ora["term"].iloc[0] == "PLANTED" and ora["ora_q"].iloc[0] < 0.05

    again = enrichment(genes, gs, rank_by="r", n_perm=200, seed=1, min_size=15, max_size=500, n_top=30)
    pd.testing.assert_frame_equal(res, again)  # deterministic with a seed


def test_missing_or_bad_gmt_names_the_config_key(tmp_path):
    with pytest.raises(InputError) as err:
        read_gmt(tmp_path / "nope.gmt", "transcriptomics.gene_sets.msigdb")
    msg = str(err.value)
    assert "transcriptomics.gene_sets.msigdb" in msg and "setup.sh" in msg and "\n" not in msg
    (tmp_path / "bad.gmt").write_text("JUST_A_NAME\n")
    with pytest.raises(InputError, match="line 1"):
        read_gmt(tmp_path / "bad.gmt")


def test_builtin_gene_sets_are_real_go_kegg_and_themes():
    from rviflow.resources import COLLECTIONS, THEMES, ensure_gene_sets

    paths = ensure_gene_sets()  # built by setup.sh: nothing is fetched here
    assert set(paths) == set(COLLECTIONS)
    bp = read_gmt(paths["go_bp"])
    sized = [k for k, v in bp.items() if 15 <= len(v) <= 500]
    assert len(sized) > 4000
    syn = bp["chemical synaptic transmission (GO:0007268)"]
    assert {"SNAP25", "SYT1", "GRIN1", "GABRA1"} <= set(syn)
    assert "CD4" in read_gmt(paths["kegg_2011"])["KEGG_2011_hsa04640"]  # hematopoietic cell lineage
    lines = paths["rviflow_themes"].read_text().splitlines()
    themes = {ln.split("\t")[0]: ln.split("\t") for ln in lines}
    assert set(themes) == set(THEMES)
    for name, go_ids in THEMES.items():
        assert all(g in themes[name][1] for g in go_ids)  # the GO IDs are written with the set
    assert set(syn) <= set(themes["RVIFLOW_SYNAPTIC"][2:])
    assert {"IL1B", "TNF", "IL6"} <= set(themes["RVIFLOW_INFLAMMATORY"][2:])
    assert {"VEGFA", "NOS3"} <= set(themes["RVIFLOW_NEUROVASCULAR"][2:])


def test_gene_sets_are_built_from_the_bioconductor_sqlite_schema(tmp_path):
    """build_gene_sets on two tiny SQLite files with org.Hs.eg.db's and GO.db's tables."""
    import sqlite3

    from rviflow.resources import THEMES, build_gene_sets

    org, go = tmp_path / "org.sqlite", tmp_path / "go.sqlite"
    con = sqlite3.connect(org)
    con.executescript("""
        CREATE TABLE metadata (name TEXT, value TEXT);
        INSERT INTO metadata VALUES ('GOSOURCEDATE', '2022-07-01'), ('KEGGSOURCEDATE', '2011-Mar15');
        CREATE TABLE gene_info (_id INTEGER, gene_name TEXT, symbol TEXT);
        CREATE TABLE go_bp_all (_id INTEGER, go_id TEXT, evidence TEXT);
        CREATE TABLE go_cc_all (_id INTEGER, go_id TEXT, evidence TEXT);
        CREATE TABLE go_mf_all (_id INTEGER, go_id TEXT, evidence TEXT);
        CREATE TABLE kegg (_id INTEGER, path_id TEXT);
    """)
    con.executemany("INSERT INTO gene_info VALUES (?, ?, ?)", [(i, f"gene {i}", f"G{i}") for i in range(1, 9)])
    bp = [(1, "GO:0007268", "IDA"), (2, "GO:0007268", "IEA"), (3, "GO:0007268", "TAS"), (3, "GO:0007268", "IDA"),
          (4, "GO:0006954", "IDA"), (5, "GO:0006954", "IDA"), (6, "GO:0006954", "IDA"), (7, "GO:0001525", "IDA"),
          (8, "GO:0099999", "IDA")]
    con.executemany("INSERT INTO go_bp_all VALUES (?, ?, ?)", bp)
    con.executemany("INSERT INTO go_cc_all VALUES (?, ?, ?)", [(1, "GO:0045202", "IDA"), (8, "GO:0045202", "IDA"),
                                                               (2, "GO:0045202", "IDA")])
    con.executemany("INSERT INTO kegg VALUES (?, ?)", [(1, "04110"), (2, "04110"), (3, "04110"), (9, "04110")])
    con.commit()
    con.close()
    con = sqlite3.connect(go)
    con.execute("CREATE TABLE go_term (_id INTEGER, go_id TEXT, term TEXT, ontology TEXT, definition TEXT)")
    con.executemany("INSERT INTO go_term VALUES (?, ?, ?, ?, '')", [
        (1, "GO:0007268", "chemical synaptic transmission", "BP"), (2, "GO:0006954", "inflammatory response", "BP"),
        (3, "GO:0001525", "angiogenesis", "BP"), (4, "GO:0045202", "synapse", "CC")])
    con.commit()
    con.close()

    paths = build_gene_sets(org, go, tmp_path / "out")
    bp_sets = read_gmt(paths["go_bp"])
    # sets below 3 genes are left out; duplicates (two evidence codes) counted once; symbols used
    assert bp_sets == {"chemical synaptic transmission (GO:0007268)": ["G1", "G2", "G3"],
                       "inflammatory response (GO:0006954)": ["G4", "G5", "G6"]}
    assert read_gmt(paths["go_cc"]) == {"synapse (GO:0045202)": ["G1", "G2", "G8"]}
    assert read_gmt(paths["kegg_2011"]) == {"KEGG_2011_hsa04110": ["G1", "G2", "G3"]}  # _id 9 has no symbol
    assert "2011-Mar15" in paths["kegg_2011"].read_text()
    themes = read_gmt(paths["rviflow_themes"])
    assert set(themes) == set(THEMES)
    assert themes["RVIFLOW_SYNAPTIC"] == ["G1", "G2", "G3", "G8"]  # BP transmission + CC synapse
    assert themes["RVIFLOW_INFLAMMATORY"] == ["G4", "G5", "G6"] and themes["RVIFLOW_NEUROVASCULAR"] == ["G7"]


def test_setup_resources_is_idempotent_and_offline_once_cached(monkeypatch):
    """Everything setup.sh fetched is found again without running pip or apt-get."""
    import subprocess

    from rviflow import resources

    def refuse(*args, **kwargs):
        raise AssertionError(f"setup-resources ran {args[0][:3]} although everything is cached")

    monkeypatch.setattr(subprocess, "run", refuse)
    paths = resources.setup_resources()
    assert all(p.exists() for p in paths.values()) and len(paths) == 1 + len(resources.COLLECTIONS)
    assert resources.main() == 0
