"""Gene-set enrichment with local GMTs against the ensemble (null-map) null: planted set found in
either tail, vectorised null equal to a plain loop, deterministic, offline, clear errors; the
built-in GO / KEGG / theme GMTs that setup.sh builds."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from rviflow.transcriptomics.enrichment import ENRICHMENT_COLUMNS, enrichment, read_gmt
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
    """Genes table, expression and null maps of the synthetic donors against the planted map."""
    from rviflow.transcriptomics.nulls import null_maps
    from rviflow.preprocess.parcellate import DK_LABELS, default_atlas, read_labels
    from rviflow.transcriptomics.association import gene_association, select_regions

    truth, planted_map, expr = synthetic_ahba
    labels = read_labels(DK_LABELS)
    regions = select_regions(labels, expr, planted_map)
    nulls = null_maps(planted_map[regions], "spin", default_atlas()[0], labels, n=200, seed=0)
    genes, _ = gene_association(expr.loc[regions], planted_map[regions], nulls, n_boot=200)
    return truth, genes, expr, pd.DataFrame(nulls, columns=regions)


def test_planted_gene_set_is_the_top_enrichment(synthetic_genes, tmp_path):
    """Planted genes follow the planted map (positive tail); their set is the top one, a half-planted
    decoy ranks below, random sets are not called; an inverted copy of the planted genes (negative
    tail) is found only when the negative tail is tested."""
    truth, genes, expr, nulls = synthetic_genes
    rng = np.random.default_rng(0)
    others = [g for g in truth["genes"] if g not in truth["planted"]]
    sets = {f"RANDOM_{i:02d}": list(rng.choice(others, 20, replace=False)) for i in range(30)}
    sets["HALF_PLANTED"] = truth["planted"][:10] + list(rng.choice(others, 10, replace=False))
    sets["PLANTED"] = truth["planted"]
    gs = read_gmt(_gmt(tmp_path / "synthetic.gmt", sets))
    res, null_long = enrichment(genes, expr, nulls, gs, rank_by="r", min_size=15, max_size=500, n_top=30)
    assert list(res.columns) == ENRICHMENT_COLUMNS
    assert res["term"].iloc[0] == "PLANTED"
    top = res.set_index("term").loc["PLANTED"]
    assert top["z"] > 0 and top["p"] < 0.05 and top["p_pos"] < 0.01 and top["size"] == 20 and top["n_null"] == 200
    assert set(top["top_genes"].split(";")) <= set(truth["planted"])
    assert res.set_index("term").loc["HALF_PLANTED", "z"] < top["z"]
    # abagen's per-sample normalisation across genes (SRS) makes every non-planted gene fall slightly
    # with the map in these donors: the competitive score (relative to all genes) leaves them uncalled
    assert (res[res["term"].str.startswith("RANDOM")]["q"] > 0.05).mean() > 0.8
    ora = res.sort_values("ora_pos_p")
    assert ora["term"].iloc[0] == "PLANTED" and ora["ora_pos_p"].iloc[0] < 0.05
    # the saved null distributions: n_null scores for each of the best sets, PLANTED's first
    assert set(null_long.columns) == {"term", "null_index", "score"}
    assert (null_long[null_long["term"] == "PLANTED"]["score"] < top["score"]).mean() > 0.95

    # a deficit-like map: the same genes now fall with the map -> negative tail
    flipped = genes.assign(r=-genes["r"])
    neg_nulls = -nulls  # the null maps of -map are -nulls (same spatial structure)
    both, _ = enrichment(flipped, expr, neg_nulls, gs, n_top=30)
    row = both.set_index("term").loc["PLANTED"]
    assert row["z"] < 0 and row["p"] < 0.05 and row["p_neg"] < 0.01 and row["ora_neg_p"] < 0.05
    pos, _ = enrichment(flipped, expr, neg_nulls, gs, direction="positive", n_top=30)
    assert pos.set_index("term").loc["PLANTED", "p"] > 0.5 and pos["ora_neg_p"].isna().all()

    again, _ = enrichment(genes, expr, nulls, gs, rank_by="r", min_size=15, max_size=500, n_top=30)
    pd.testing.assert_frame_equal(res, again)  # deterministic


def test_ensemble_null_equals_a_plain_loop_over_null_maps():
    """Vectorised set scores / overlaps / p against a per-null, per-set loop written plainly."""
    from rviflow.transcriptomics.enrichment import ensemble_enrichment, null_rankings

    rng = np.random.default_rng(3)
    n_reg, n_genes, k = 20, 120, 37
    expr = rng.normal(size=(n_reg, n_genes))
    genes = [f"G{i:03d}" for i in range(n_genes)]
    brain_map = rng.normal(size=n_reg)
    null_maps = rng.normal(size=(k, n_reg))
    obs = pd.Series([np.corrcoef(expr[:, g], brain_map)[0, 1] for g in range(n_genes)], index=genes)
    sets = {f"S{i}": list(rng.choice(genes, int(rng.integers(5, 30)), replace=False)) for i in range(12)}
    nulls = null_rankings(expr, null_maps, "r")
    res, null_set = ensemble_enrichment(obs, nulls, sets, min_size=5, max_size=40, n_top=15, chunk=10)
    res = res.set_index("term")
    for name, members in sets.items():
        idx = [genes.index(g) for g in members]
        plain_null = [np.mean([np.corrcoef(expr[:, g], null_maps[j])[0, 1] for g in idx]) for j in range(k)]
        plain_all = [np.median([np.corrcoef(expr[:, g], null_maps[j])[0, 1] for g in range(n_genes)]) for j in range(k)]
        plain_null = np.array(plain_null) - plain_all  # competitive: relative to all genes of the ranking
        s = obs.iloc[idx].mean() - obs.median()
        p_pos = (1 + sum(v >= s for v in plain_null)) / (1 + k)
        p_neg = (1 + sum(v <= s for v in plain_null)) / (1 + k)
        row = res.loc[name]
        assert row["score"] == pytest.approx(s) and row["p_pos"] == pytest.approx(p_pos)
        assert row["p_neg"] == pytest.approx(p_neg) and row["p"] == pytest.approx(min(1, 2 * min(p_pos, p_neg)))
        np.testing.assert_allclose(null_set[list(res.index).index(name)], plain_null, atol=1e-12)
        top_obs = set(obs.sort_values(ascending=False).index[:15])
        bottom_obs = set(obs.sort_values().index[:15])
        assert row["ora_pos_overlap"] == len(top_obs & set(members))
        assert row["ora_neg_overlap"] == len(bottom_obs & set(members))
        null_pos = [len({genes[i] for i in np.argsort(-nulls[j])[:15]} & set(members)) for j in range(k)]
        assert row["ora_pos_p"] == pytest.approx((1 + sum(c >= row["ora_pos_overlap"] for c in null_pos)) / (1 + k))


def test_pls1_weight_ranking_and_bad_options():
    from rviflow.transcriptomics.enrichment import ensemble_enrichment, null_rankings
    from rviflow.transcriptomics.association import pls_regression

    rng = np.random.default_rng(4)
    expr, maps = rng.normal(size=(15, 40)), rng.normal(size=(3, 15))
    w = null_rankings(expr, maps, "pls1_weight")
    for j in range(3):  # the null maps' PLS1 weights are what pls_regression gives each of them
        w1 = pls_regression(expr, maps[j], 1)[0][:, 0]
        np.testing.assert_allclose(w[j], w1 * np.sign(w1 @ w[j]), atol=1e-10)
    with pytest.raises(InputError, match="rank_by"):
        null_rankings(expr, maps, "z")
    with pytest.raises(InputError, match="direction"):
        ensemble_enrichment(pd.Series(w[0], index=[f"G{i}" for i in range(40)]), w, {}, direction="up")


def test_missing_or_bad_gmt_names_the_config_key(tmp_path):
    with pytest.raises(InputError) as err:
        read_gmt(tmp_path / "nope.gmt", "transcriptomics.gene_sets.msigdb")
    msg = str(err.value)
    assert "transcriptomics.gene_sets.msigdb" in msg and "setup.sh" in msg and "\n" not in msg
    (tmp_path / "bad.gmt").write_text("JUST_A_NAME\n")
    with pytest.raises(InputError, match="line 1"):
        read_gmt(tmp_path / "bad.gmt")


def test_builtin_gene_sets_are_real_go_kegg_and_themes():
    from rviflow.io.resources import COLLECTIONS, THEMES, ensure_gene_sets

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

    from rviflow.io.resources import THEMES, build_gene_sets

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

    from rviflow.io import resources

    def refuse(*args, **kwargs):
        raise AssertionError(f"setup-resources ran {args[0][:3]} although everything is cached")

    monkeypatch.setattr(subprocess, "run", refuse)
    paths = resources.setup_resources()
    assert all(p.exists() for p in paths.values()) and len(paths) == 1 + len(resources.COLLECTIONS)
    assert resources.main() == 0


@pytest.mark.workflow
def test_workflow_writes_ensemble_enrichment_null_maps_and_report(tmp_path):
    """Real snakemake, tables-only cohort + the real AHBA DK table: the gene association saves its null
    maps, the enrichment rule scores the same null maps' rankings (n_null = n_nulls), left hemisphere
    by default, both tails; the report shows the tests and the null distributions."""
    import yaml

    from conftest import run_snakemake
    from rviflow.cli import tables_demo_config
    from rviflow.io.resources import gene_set_file
    from rviflow.synth.tables import write_table_cohort

    cohort = write_table_cohort(tmp_path / "data", n_subjects=30, seed=2)
    cfg = tables_demo_config(cohort, tmp_path)
    cfg["cohort"].update(rvi={"enabled": False}, prediction={"enabled": False},
                         colocalisation={"enabled": False})
    themes = read_gmt(gene_set_file("rviflow_themes"))
    mini = {k: v[:200] for k, v in themes.items()}
    _gmt(tmp_path / "mini.gmt", mini)
    cfg["transcriptomics"] = dict(enabled=True, maps=["reho"], collections=["mini"],
                                  gene_sets={"mini": str(tmp_path / "mini.gmt")}, n_nulls=120, n_boot=100,
                                  n_top=300)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp_path / "config.yaml", tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tx = tmp_path / "derivatives" / "rviflow" / "group" / "transcriptomics"
    null_maps = pd.read_csv(tx / "reho_null_maps.tsv", sep="\t", index_col="null_index")
    regions = [c for c in null_maps.columns if c != "pls1_variance_explained"]
    assert len(null_maps) == 120 and len(regions) == 34 and all(r.startswith("L_") for r in regions)
    res = pd.read_csv(tx / "reho_enrichment_mini.tsv", sep="\t")
    assert list(res.columns) == ENRICHMENT_COLUMNS and set(res["term"]) == set(mini)
    assert (res["n_null"] == 120).all() and (res["direction"] == "both").all()
    assert res[["p", "p_pos", "p_neg", "ora_pos_p", "ora_neg_p"]].ge(1 / 121).all().all()
    assert res["gsea_p_gene_perm"].isna().all()  # n_perm 0: gseapy not run
    nulls = pd.read_csv(tx / "reho_enrichment_mini_nulls.tsv", sep="\t")
    assert set(nulls["term"]) == set(mini) and len(nulls) == 120 * len(mini)
    for _, row in res.iterrows():  # the p in the table is the one its saved null gives
        null = nulls.loc[nulls["term"] == row["term"], "score"].to_numpy()
        p_pos = (1 + (null >= row["score"] - 1e-9).sum()) / 121  # tables hold 6 significant digits
        assert row["p_pos"] == pytest.approx(p_pos, rel=1e-5)
    html = (tmp_path / "derivatives" / "rviflow" / "report" / "rviflow_report.html").read_text()
    assert "Fulcher" in html and "ensemble null of RVIFLOW_SYNAPTIC" in html
    assert "null distribution of PLS1 variance explained" in html and "null distribution of r for the top gene" in html
