"""Report robustness on real-cohort edge cases: AUC = 1 (CI beyond 1 or undefined), a failed
cohort step (failure marker: the section says why), the methods naming a task that is not rest."""

from __future__ import annotations

import pandas as pd

from rviflow.report import sections as rs
from rviflow.pipeline.outcome import write_failure
from rviflow.report.document import RunData
from rviflow.report.methods import methods_paragraphs


def _run(tmp_path, **config):
    group = tmp_path / "group"
    group.mkdir()
    pd.DataFrame(dict(participant_id=["sub-01", "sub-02"], diagnosis=["MDD", "HC"])).to_csv(
        tmp_path / "participants.tsv", sep="\t", index=False)
    return RunData(tmp_path, dict(config), str(tmp_path / "participants.tsv")), group


def test_prediction_with_auc_of_one_is_drawn(tmp_path):
    run, group = _run(tmp_path)
    pd.DataFrame(dict(features=["reho", "reho", "combined"], model=["logistic_l2", "linear_svm", "logistic_l2"],
                      metric="auc", estimate=[1.0, 1.0, 0.9], ci_low=[float("nan"), 1.0, 0.7],
                      ci_high=[float("nan"), 1.04, 1.1])).to_csv(group / "prediction.tsv", sep="\t", index=False)
    pd.DataFrame(dict(measure="reho", statistic=["auc_rvi", "d_rvi"], estimate=[1.0, 3.2], ci_low=[0.97, 2.0],
                      ci_high=[1.03, 4.4])).to_csv(group / "rvi_summary.tsv", sep="\t", index=False)
    html = rs.rvi_section(run)
    assert "Prediction AUCs with 95% CIs" in html and "could not be built" not in html
    assert ">1.04<" not in html and ">1.03<" not in html and ">1.1<" not in html  # AUC CIs clipped at 1
    assert ">4.4<" in html  # not other statistics


def test_failed_step_says_why(tmp_path):
    run, group = _run(tmp_path)
    write_failure([group / "prediction.tsv", group / "rvi.tsv"],
                  "prediction reho: 3 cases and 2 controls; too few to cross-validate (to skip this analysis set "
                  "cohort.prediction.enabled: false)")
    html = rs.rvi_section(run)
    assert "the step making group/prediction.tsv failed: prediction reho: 3 cases" in html
    assert "cohort.prediction.enabled: false" in html


def test_failed_transcriptomics_says_why(tmp_path):
    run, group = _run(tmp_path)
    (group / "transcriptomics").mkdir()
    write_failure([group / "transcriptomics" / "reho_genes.tsv"], "not run: effect_sizes.tsv failed (reho: too few)")
    html = rs.transcriptomics_section(run)
    assert "reho_genes.tsv: not run: effect_sizes.tsv failed (reho: too few)" in html
    assert "rviflow_status" not in html  # the marker is not drawn as a gene table


def test_methods_name_the_task(tmp_path):
    text = " ".join(methods_paragraphs(dict(fmriprep_dir="/x", task="balloonanalogrisktask", space="S",
                                            combine_runs="mean", session="pre"), {}, {})[0])
    assert "task-balloonanalogrisktask BOLD (a task, not resting state)" in text and "resting-state" not in text
    assert "session ses-pre" in text and "weighted by the volumes kept" in text
    rest = " ".join(methods_paragraphs(dict(fmriprep_dir="/x", task="rest", space="S"), {}, {})[0])
    assert "resting-state BOLD (task-rest)" in rest
