"""The cohort statistics in a real snakemake run (conftest's pipeline_run: 16 subjects, 2 sites)."""

from __future__ import annotations

import pandas as pd
import pytest

from rviflow.cli import main

pytestmark = pytest.mark.workflow

TABLES = ("effect_sizes_hemiavg.tsv", "effect_size_ratio.tsv", "colocalisation.tsv", "coupling.tsv", "rvi.tsv",
          "rvi_summary.tsv", "rvi_symptoms.tsv", "expected_pattern_reho.tsv", "expected_pattern_thickness.tsv",
          "prediction.tsv", "parcels_thickness.tsv", "harmonized/parcels_reho.tsv", "models/combat_reho.pkl",
          "models/reference_reho.pkl")


def _read(out, name):
    return pd.read_csv(out / "group" / name, sep="\t")


def test_every_cohort_table_is_written(pipeline_run):
    proc, out, cohort = pipeline_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in TABLES:
        assert (out / "group" / name).stat().st_size > 0, name
    eff = _read(out, "effect_sizes.tsv")
    assert {"reho", "thickness"} <= set(eff["measure"]) and (eff["measure"] == "thickness").sum() == 68
    hemi = _read(out, "effect_sizes_hemiavg.tsv")
    assert (hemi["measure"] == "reho").sum() == 42 and "precuneus" in set(hemi["region"])  # 34 + 7 + brainstem
    coloc = _read(out, "colocalisation.tsv")
    assert list(coloc.columns[:7]) == ["map_a", "map_b", "n_regions", "n_subjects", "r", "p", "p_spatial_null"]
    assert (coloc["p"] == coloc[["p_spatial_null", "p_label_perm"]].max(1)).all() and (coloc["n_perm"] == 1000).all()
    assert (coloc["n_null"] >= 1000).all() and ((coloc["map_a"] == "reho") & (coloc["map_b"] == "thickness")).any()
    rvi = _read(out, "rvi.tsv")
    assert list(rvi.columns[:5]) == ["participant_id", "measure", "rvi", "avi", "fold"]
    assert (rvi["fold"] >= 1).all() and rvi["rvi"].between(-1, 1).all() and rvi.groupby("measure").size().min() == 16
    summ = _read(out, "rvi_summary.tsv")
    assert {"auc_rvi", "auc_best_region", "d_rvi"} <= set(summ["statistic"])
    perm = summ[summ["statistic"].isin(["auc_rvi", "auc_best_region", "d_rvi"])]
    assert (perm["n_perm"] == 1000).all() and perm["p"].between(1 / 1001, 1).all() and perm["p_parametric"].notna().all()
    assert "reho-thickness" in set(summ["measure"])
    sym = _read(out, "rvi_symptoms.tsv")
    assert set(sym["symptom"]) == {"hamd"} and (sym.loc[sym["statistic"] == "partial_r", "n"] == 8).all()
    pred = _read(out, "prediction.tsv")
    assert {"logistic_l2", "linear_svm", "linear_svr"} <= set(pred["model"]) and "combined" in set(pred["features"])


def test_planted_thickness_deficit_and_ratio(pipeline_run):
    """Truth: thickness planted at a third of ReHo's standardised deficit, in the same regions."""
    proc, out, cohort = pipeline_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    eff = _read(out, "effect_sizes.tsv").merge(pd.read_csv(cohort["truth"] / "effects.tsv", sep="\t"),
                                               on=["measure", "region"])
    th = eff[eff["measure"] == "thickness"]
    assert th.loc[th["planted_d"] < 0, "d"].mean() < th.loc[th["planted_d"] == 0, "d"].mean()
    ratio = _read(out, "effect_size_ratio.tsv")
    row = ratio[(ratio["measure_a"] == "reho") & (ratio["measure_b"] == "thickness")].iloc[0]
    assert row["ci_low"] <= row["ratio"] <= row["ci_high"] and row["n_boot"] == 1000


def test_frozen_reference_scores_new_subjects(pipeline_run, tmp_path):
    proc, out, cohort = pipeline_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = _read(out, "parcels_reho.tsv").head(5)
    table.to_csv(tmp_path / "new.tsv", sep="\t", index=False)
    rc = main(["score", "--reference", str(out / "group" / "models" / "reference_reho.pkl"), "--table",
               str(tmp_path / "new.tsv"), "--participants", str(cohort["participants"]), "--out",
               str(tmp_path / "scored.tsv")])
    assert rc == 0
    one = pd.read_csv(tmp_path / "scored.tsv", sep="\t")
    table.head(2).to_csv(tmp_path / "new2.tsv", sep="\t", index=False)
    assert main(["score", "--reference", str(out / "group" / "models" / "reference_reho.pkl"), "--table",
                 str(tmp_path / "new2.tsv"), "--participants", str(cohort["participants"]), "--out",
                 str(tmp_path / "scored2.tsv")]) == 0
    two = pd.read_csv(tmp_path / "scored2.tsv", sep="\t")
    pd.testing.assert_frame_equal(one.head(2), two)  # a subject's score does not depend on its batch
    refit = _read(out, "rvi.tsv")
    assert len(one) == 5 and one["rvi"].notna().all() and set(one["participant_id"]) <= set(refit["participant_id"])


def test_cohort_stage_bad_label_is_left_out_with_one_clear_message(cohort16, tmp_path):
    """A participants.tsv with a group label outside the config's: reported before any job, the
    subject left out (counted), the cohort statistics run on the others (issue 15)."""
    from conftest import run_snakemake, write_config

    parts = pd.read_csv(cohort16["participants"], sep="\t")
    parts.loc[2, "diagnosis"] = "bipolar"
    parts.to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    cfg = write_config(tmp_path / "c.yaml", cohort16, tmp_path / "out", participants=str(tmp_path / "participants.tsv"),
                       cohort={"thickness": {"source": "freesurfer"}})
    proc = run_snakemake(cfg, tmp_path, str(tmp_path / "out" / "group" / "harmonized" / "parcels_thickness.tsv"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ("sub-003: diagnosis = 'bipolar' is neither case 'MDD' nor control 'HC': left out "
            "(config groups.case / groups.control)") in proc.stderr
    assert "1 participant(s) left out with a diagnosis other than 'MDD' / 'HC': bipolar 1" in proc.stderr
    harmonized = pd.read_csv(tmp_path / "out" / "group" / "harmonized" / "parcels_thickness.tsv", sep="\t")
    assert "sub-003" not in set(harmonized["participant_id"]) and len(harmonized) == 15


def test_user_tables_and_enigma_thickness_join_the_measures(cohort16, tmp_path):
    """Dry run: a user's regional table (cohort.tables) and an ENIGMA thickness table become measures."""
    from conftest import run_snakemake, write_config

    parts = pd.read_csv(cohort16["participants"], sep="\t")
    pd.DataFrame({"participant_id": parts["participant_id"], "L_insula": 1.0, "R_insula": 2.0}).to_csv(
        tmp_path / "gmv.tsv", sep="\t", index=False)
    pd.DataFrame({"SubjID": parts["participant_id"], "L_insula_thickavg": 3.0}).to_csv(
        tmp_path / "enigma.csv", index=False)
    cfg = write_config(tmp_path / "c.yaml", cohort16, tmp_path / "out",
                       cohort={"tables": {"gmv": str(tmp_path / "gmv.tsv")},
                               "thickness": {"source": "enigma", "enigma_table": str(tmp_path / "enigma.csv")}})
    proc = run_snakemake(cfg, tmp_path, "--dry-run", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    for rule in ("import_table", "thickness", "harmonize", "rvi", "prediction", "colocalisation", "effect_summaries"):
        assert rule in text, rule
    assert "expected_pattern_gmv.tsv" in run_snakemake(cfg, tmp_path, "--dry-run").stdout
