"""Regional AHBA expression: abagen backend on synthetic donors vs a plain computation, the real
Desikan-Killiany table and its label mapping, and the messages for missing inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rviflow.errors import InputError
from rviflow.transcriptomics.expression import find_donors, read_expression_table
from rviflow.preprocess.parcellate import DK_LABELS, default_atlas, read_labels
from rviflow.synth.ahba import DONORS, labelled_wells


@pytest.fixture(scope="module")
def labels():
    return read_labels(DK_LABELS)


def _srs(x: np.ndarray, axis: int) -> np.ndarray:
    """Scaled robust sigmoid written out: sigmoid((x - median) / (IQR / 1.349)), then min-max to [0, 1]."""
    med = np.median(x, axis=axis, keepdims=True)
    iqr = stats.iqr(x, axis=axis, keepdims=True) / 1.3489795003921634
    s = 1 / (1 + np.exp(-(x - med) / iqr))
    return (s - s.min(axis=axis, keepdims=True)) / (s.max(axis=axis, keepdims=True) - s.min(axis=axis, keepdims=True))


def test_abagen_backend_matches_direct_computation(synthetic_ahba, labels):
    """Every sample's region is known by construction: SRS across genes per sample, SRS across
    samples per gene within a donor, mean per region per donor, mean over donors."""
    truth, _, expr = synthetic_ahba
    regions = labelled_wells(default_atlas()[0], labels).set_index("well_id")["name"]
    per_donor = []
    for d in sorted(Path(truth["dir"], "microarray").glob("normalized_microarray_donor*")):
        assert int(d.name.removeprefix("normalized_microarray_donor")) in DONORS
        annot = pd.read_csv(d / "SampleAnnot.csv")
        probes = pd.read_csv(d / "Probes.csv")
        x = pd.read_csv(d / "MicroarrayExpression.csv", header=None, index_col=0).to_numpy().T  # samples x probes
        x = _srs(_srs(x, 1), 0)
        region_of_sample = regions.loc[annot["well_id"]].to_numpy()
        per_donor.append(pd.DataFrame(x, columns=probes["gene_symbol"]).groupby(region_of_sample).mean())
    direct = pd.concat(per_donor).groupby(level=0).mean()
    assert list(expr.index) == labels["name"].tolist()  # atlas order, atlas names
    assert sorted(expr.columns) == sorted(truth["genes"])
    sampled = expr.dropna(how="all")
    assert set(sampled.index) == set(direct.index) and len(direct) > 60
    np.testing.assert_allclose(sampled.loc[direct.index, direct.columns].to_numpy(), direct.to_numpy(), atol=1e-6)
    assert expr.loc["B_brainstem"].isna().all()  # no synthetic sample there


def test_real_dk_table_loads_with_atlas_labels(labels):
    from rviflow.io.resources import fetch_dk_expression

    path = fetch_dk_expression()  # cached by setup.sh: no download here
    expr = read_expression_table(path, labels)
    assert expr.shape == (83, 15633)
    assert list(expr.index) == labels["name"].tolist()
    assert not expr.isna().any().any()
    raw = pd.read_csv(path, encoding="utf-8-sig", index_col="Region")
    for region in ("L_bankssts", "R_insula", "brainstem"):
        name = "B_brainstem" if region == "brainstem" else region
        np.testing.assert_array_equal(expr.loc[name].to_numpy(), raw.loc[region, expr.columns].to_numpy(float))


def test_table_labels_that_do_not_match_fail_loudly(tmp_path, labels):
    good = pd.DataFrame({"Region": ["L_bankssts", "lh_cuneus", "brainstem"], "GENE1": [1.0, 2.0, 3.0]})
    good.to_csv(tmp_path / "ok.csv", index=False)
    expr = read_expression_table(tmp_path / "ok.csv", labels)
    assert expr.loc[["L_bankssts", "L_cuneus", "B_brainstem"], "GENE1"].tolist() == [1.0, 2.0, 3.0]
    assert expr["GENE1"].isna().sum() == 80

    bad = pd.DataFrame({"Region": ["L_bankssts", "L_hippocampal_gyrus"], "GENE1": [1.0, 2.0]})
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match="L_hippocampal_gyrus"):
        read_expression_table(tmp_path / "bad.csv", labels)

    shifted = pd.DataFrame({"label": [1, 2], "Region": ["L_caudalanteriorcingulate", "L_bankssts"], "G": [1.0, 2.0]})
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    with pytest.raises(InputError, match="another label order"):
        read_expression_table(tmp_path / "shifted.csv", labels)

    with pytest.raises(InputError, match="transcriptomics.expression_table"):
        read_expression_table(tmp_path / "missing.csv", labels)


def test_missing_ahba_dir_names_the_key_and_the_download(tmp_path):
    for value in ("", tmp_path):
        with pytest.raises(InputError) as err:
            find_donors(value)
        msg = str(err.value)
        assert "transcriptomics.ahba_dir" in msg and "fetch_microarray" in msg and "\n" not in msg
    incomplete = tmp_path / "microarray" / "normalized_microarray_donor9861"
    incomplete.mkdir(parents=True)
    (incomplete / "Probes.csv").write_text("probe_id\n")
    with pytest.raises(InputError, match="no complete AHBA donor"):
        find_donors(tmp_path)


def test_workflow_stops_before_any_job_naming_the_missing_input(tmp_path):
    """A dry run with transcriptomics on and a missing AHBA dir fails at parse time with one message
    naming the config key and how to provide it (the other inputs: next test, same function)."""
    from conftest import run_snakemake, write_config

    from rviflow.synth.cohort import write_cohort

    cohort = write_cohort(tmp_path / "c", n_subjects=4, seed=0, n_timepoints=60, asl=False)
    tx = dict(enabled=True, backend="abagen", ahba_dir=str(tmp_path / "no_ahba"))
    cfg = write_config(tmp_path / "config.yaml", cohort, tmp_path / "out", transcriptomics=tx)
    proc = run_snakemake(cfg, tmp_path, "--dry-run", "--quiet", timeout=300)
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr  # Snakemake 9 prints a parse-time WorkflowError on stdout
    assert "transcriptomics.ahba_dir" in said and "fetch_microarray" in said, said[-2000:]
    assert not (tmp_path / "out" / "group").exists()


def test_transcriptomics_inputs_name_the_key_of_what_is_missing(tmp_path):
    """What transcriptomics.smk checks at parse time (rviflow.io.resources.transcriptomics_inputs)."""
    from rviflow.io.resources import COLLECTIONS, transcriptomics_inputs

    base = dict(backend="table", expression_table="", ahba_dir="", collections=list(COLLECTIONS), gene_sets={})
    table, gmts = transcriptomics_inputs(base)  # the defaults: what setup.sh cached
    assert Path(table).name == "atlas-DK_gene_expression_data.csv" and set(gmts) == set(COLLECTIONS)
    cases = {
        "transcriptomics.expression_table": dict(expression_table=str(tmp_path / "none.csv")),
        "transcriptomics.gene_sets.mine": dict(collections=["mine"], gene_sets={"mine": str(tmp_path / "x.gmt")}),
        "transcriptomics.collections": dict(collections=["msigdb_h"]),
        "transcriptomics.ahba_dir": dict(backend="abagen", ahba_dir=str(tmp_path)),
    }
    for key, change in cases.items():
        with pytest.raises(InputError) as err:
            transcriptomics_inputs({**base, **change})
        assert str(err.value).startswith(key) or f"{key} " in str(err.value), str(err.value)
    assert "setup.sh" in str(pytest.raises(InputError, transcriptomics_inputs, {**base, **cases[
        "transcriptomics.gene_sets.mine"]}).value)
