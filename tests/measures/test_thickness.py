"""Cortical thickness from FreeSurfer aparc.stats and ENIGMA tables, named as the DK atlas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rviflow.errors import InputError
from rviflow.preprocess.parcellate import default_atlas, read_labels
from rviflow.measures.thickness import enigma_table, format_aparc_stats, freesurfer_table, read_aparc_stats

# the table part of a FreeSurfer 6.0 lh.aparc.stats, as mris_anatomical_stats writes it
FS6 = """# Table of FreeSurfer cortical parcellation anatomical statistics
# CreationTime 2017/03/14-10:11:12-GMT
# generating_program mris_anatomical_stats
# cvs_version $Id: mris_anatomical_stats.c,v 1.79 2016/03/14 15:15:34 greve Exp $
# mrisurf.c-cvs_version $Id: mrisurf.c,v 1.781.2.6 2016/12/27 16:47:14 zkaufman Exp $
# subjectname bert
# hemi lh
# AnnotationFile ../label/lh.aparc.annot
# Measure Cortex, NumVert, Number of Vertices, 129052, unitless
# Measure Cortex, MeanThickness, Mean Thickness, 2.51946, mm
# NTableCols 10
# TableCol  1 ColHeader StructName
# TableCol  5 ColHeader ThickAvg
# ColHeaders StructName NumVert SurfArea GrayVol ThickAvg ThickStd MeanCurv GausCurv FoldInd CurvInd
bankssts                                 1364    925   2200  2.618 0.420     0.103     0.019        9     1.0
caudalanteriorcingulate                  1042    707   2132  2.726 0.735     0.135     0.023       16     1.0
insula                                   3318   2181   6987  3.027 0.775     0.108     0.026       34     3.6
"""


@pytest.fixture(scope="module")
def regions():
    return list(read_labels(default_atlas()[1])["name"])


def test_freesurfer6_table_is_parsed(tmp_path):
    """Reference: the numbers typed in the FreeSurfer 6 table above."""
    f = tmp_path / "lh.aparc.stats"
    f.write_text(FS6)
    th = read_aparc_stats(f)
    assert th.to_dict() == {"bankssts": 2.618, "caudalanteriorcingulate": 2.726, "insula": 3.027}
    assert read_aparc_stats(f, "GrayVol")["insula"] == 6987


def test_subjects_dir_gives_dk_names_and_reports_missing(tmp_path, regions):
    rng = np.random.default_rng(0)
    labels = read_labels(default_atlas()[1])
    cortex = list(labels.loc[(labels["structure"] == "cortex") & (labels["hemisphere"] == "L"), "label"])
    assert len(cortex) == 34
    truth = {}
    for sub in ("sub-01", "sub-02"):
        d = tmp_path / sub / "stats"
        d.mkdir(parents=True)
        for hemi, h in (("lh", "L"), ("rh", "R")):
            vals = dict(zip(cortex, rng.uniform(1.5, 4, len(cortex)).round(3)))
            truth.update({(sub, f"{h}_{k}"): v for k, v in vals.items()})
            (d / f"{hemi}.aparc.stats").write_text(format_aparc_stats(hemi, sub, vals, rng))
    (tmp_path / "sub-03" / "stats").mkdir(parents=True)
    (tmp_path / "sub-03" / "stats" / "lh.aparc.stats").write_text(FS6)
    table, qc = freesurfer_table(tmp_path, ["sub-01", "sub-02", "sub-03"], regions)
    assert list(table["participant_id"]) == ["sub-01", "sub-02"]
    assert table.shape[1] == 2 + 68 and set(table.columns[2:]) <= set(regions)
    for (sub, reg), v in truth.items():
        assert table.set_index("participant_id").loc[sub, reg] == v
    bad = [r for r in qc if r["status"] == "failed"]
    assert len(bad) == 1 and bad[0]["participant_id"] == "sub-03" and "rh.aparc.stats missing" in bad[0]["reason"]


def test_enigma_table(tmp_path, regions):
    df = pd.DataFrame({"SubjID": ["01", "sub-02"], "L_bankssts_thickavg": [2.5, 2.6],
                       "R_insula_thickavg": [3.1, 3.0], "LThickness": [2.4, 2.5], "ICV": [1.5e6, 1.4e6]})
    df.to_csv(tmp_path / "CorticalMeasuresENIGMA_ThickAvg.csv", index=False)
    table = enigma_table(tmp_path / "CorticalMeasuresENIGMA_ThickAvg.csv", regions)
    assert list(table.columns) == ["participant_id", "session", "L_bankssts", "R_insula"]
    assert list(table["participant_id"]) == ["sub-01", "sub-02"] and table["R_insula"].tolist() == [3.1, 3.0]


def test_bad_stats_files_are_named(tmp_path, regions):
    f = tmp_path / "lh.aparc.stats"
    f.write_text("bankssts 1 2 3\n")
    with pytest.raises(InputError, match="no '# ColHeaders' line.*lh.aparc.stats|lh.aparc.stats.*ColHeaders"):
        read_aparc_stats(f)
    f.write_text(FS6.replace("insula                                   3318", "insula 3318 99"))
    with pytest.raises(InputError, match="fields"):
        read_aparc_stats(f)
    pd.DataFrame({"SubjID": ["1"], "L_nowhere_thickavg": [2.0]}).to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(InputError, match="not in the atlas: L_nowhere"):
        enigma_table(tmp_path / "e.csv", regions)
    pd.DataFrame({"SubjID": ["1", "2"], "L_insula_thickavg": ["2.0", "thick"]}).to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(InputError, match="e.csv: 2: thickness region 'L_insula_thickavg' has a non-numeric value"):
        enigma_table(tmp_path / "e.csv", regions)
