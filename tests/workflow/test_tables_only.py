"""A tables-only run: the cohort statistics on regional tables and participants.tsv alone (no
fmriprep_dir, no images), as `rviflow demo --tables-only` configures it; and its bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from conftest import recovered_vs_planted, run_snakemake
from rviflow.cli import tables_demo_config
from rviflow.synth.tables import write_table_cohort

pytestmark = pytest.mark.workflow

TABLES = ("effect_sizes.tsv", "effect_sizes_hemiavg.tsv", "effect_size_ratio.tsv", "colocalisation.tsv",
          "colocalisation_null.tsv", "coupling.tsv", "rvi.tsv", "rvi_summary.tsv", "rvi_symptoms.tsv",
          "expected_pattern_reho.tsv", "expected_pattern_cbf.tsv", "expected_pattern_thickness.tsv", "prediction.tsv",
          "qc.tsv", "parcels_thickness.tsv", "harmonized/parcels_cbf.tsv", "models/reference_reho.pkl")
N = 48


@pytest.fixture(scope="module")
def tables_run(tmp_path_factory):
    """48 synthetic subjects (3 sites): ReHo and CBF tables, ENIGMA thickness; the CBF table has a
    row of a subject participants.tsv lacks (sub-999) and none for sub-048. Spin-test nulls."""
    root = tmp_path_factory.mktemp("tables_only")
    cohort = write_table_cohort(root / "data", n_subjects=N, seed=1)
    cbf = pd.read_csv(cohort["tables"]["cbf"], sep="\t")
    pd.concat([cbf[cbf["participant_id"] != "sub-048"], cbf.head(1).assign(participant_id="sub-999")]).to_csv(
        cohort["tables"]["cbf"], sep="\t", index=False)
    cfg = tables_demo_config(cohort, root)
    cfg["cohort"]["colocalisation"] = {"null_method": "spin"}
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(root / "config.yaml", root)
    return proc, root / "derivatives" / "rviflow", cohort


def test_every_cohort_table_without_images(tables_run):
    proc, out, cohort = tables_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in TABLES:
        assert (out / "group" / name).stat().st_size > 0, name
    assert not list(out.glob("sub-*")) and not (out / "work").exists()  # no per-scan step ran
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    rvi = pd.read_csv(out / "group" / "rvi.tsv", sep="\t")
    assert rvi.groupby("measure").size().to_dict() == {"cbf": N - 1, "reho": N, "thickness": N}
    assert {"logistic_l2", "linear_svr"} <= set(pd.read_csv(out / "group" / "prediction.tsv", sep="\t")["model"])
    html = (out / "report" / "rviflow_report.html").read_text()
    assert "regional tables" in html and 'data-status="error"' not in html


def test_planted_effects_are_recovered(tables_run):
    proc, out, cohort = tables_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for measure in ("reho", "cbf", "thickness"):
        m, eff = recovered_vs_planted(out, cohort, measure)
        assert len(m) == (68 if measure == "thickness" else 83), measure
        planted = m[m["planted_d"] < 0]
        covered = (planted["ci_low"] <= planted["planted_d"]) & (planted["planted_d"] <= planted["ci_high"])
        assert covered.mean() >= 0.8, (measure, planted[["region", "d", "ci_low", "ci_high"]])
        assert planted["d"].mean() < m.loc[m["planted_d"] == 0, "d"].mean() - 0.25, measure
        assert planted["d"].mean() == pytest.approx(planted["planted_d"].mean(), abs=0.35), measure


def test_spin_colocalisation_and_saved_null(tables_run):
    proc, out, cohort = tables_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    coloc = pd.read_csv(out / "group" / "colocalisation.tsv", sep="\t")
    assert list(coloc.columns[:7]) == ["map_a", "map_b", "n_regions", "n_subjects", "r", "p", "p_spatial_null"]
    assert (coloc["null_method"] == "spin").all() and (coloc["n_regions"] == 68).all()  # DK cortex only
    assert (coloc["n_null"] == 1000).all() and (coloc["n_perm"] == 1000).all()
    # ReHo and CBF are planted in overlapping regions: their d maps co-localise beyond both nulls
    # (CBF lacks sub-048, so the pair's maps use the 47 subjects with both)
    pair = coloc[coloc[["map_a", "map_b"]].apply(set, axis=1) == {"reho", "cbf"}].iloc[0]
    assert pair["r"] > 0.3 and pair["p"] < 0.05 and pair["n_subjects"] == N - 1
    assert pair["p"] == max(pair["p_spatial_null"], pair["p_label_perm"])
    null = pd.read_csv(out / "group" / "colocalisation_null.tsv", sep="\t")
    assert len(null) == 3 * 2000 and set(zip(null["map_a"], null["map_b"])) == set(zip(coloc["map_a"], coloc["map_b"]))
    assert null.groupby("null").size().to_dict() == {"label": 3000, "spatial": 3000}


def test_rows_without_a_participant_are_left_out_and_reported(tables_run):
    proc, out, cohort = tables_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rviflow: sub-999: has data in cbf.tsv but no row in participants.tsv" in proc.stderr
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t", keep_default_na=False).set_index(["participant_id", "step"])
    assert qc.loc[("sub-999", "table_cbf"), "status"] == "failed"
    assert qc.loc[("sub-048", "table_cbf"), "status"] == "failed" and "no row in cbf.tsv" in qc.loc[
        ("sub-048", "table_cbf"), "reason"]
    assert "sub-999" not in set(pd.read_csv(out / "group" / "parcels_cbf.tsv", sep="\t")["participant_id"])


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["cohort"]["tables"].update(gmv="/nonexistent/gmv.tsv"),
     "rviflow: config cohort.tables.gmv: /nonexistent/gmv.tsv does not exist"),
    (lambda c: c.update(participants=""), "rviflow: config participants and bids_dir are both empty"),
    (lambda c: c["cohort"].update(tables={}, thickness={"source": "auto"}), "rviflow: nothing to analyse"),
    (lambda c: c["cohort"].update(thickness={"source": "enigma"}),
     "rviflow: config cohort.thickness.enigma_table is empty (source enigma needs it)"),
    (lambda c: c.update(fmriprep_dir="/data/fmriprep"), "'bids_dir' is a required property"),
], ids=["missing_table", "no_participants", "nothing_to_analyse", "no_enigma_table", "images_need_bids_dir"])
def test_tables_only_config_errors_before_any_job(tmp_path, edit, message):
    cohort = write_table_cohort(tmp_path / "data", n_subjects=12, seed=0)
    cfg = tables_demo_config(cohort, tmp_path)
    edit(cfg)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp_path / "c.yaml", tmp_path, "--dry-run")
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in said, said[-2000:]
    assert not (tmp_path / "derivatives").exists()
