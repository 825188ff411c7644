"""Input discovery from an fMRIPrep tree, participants matching, output naming."""

from __future__ import annotations

import pandas as pd
import pytest

from rviflow.io.bids import (bids_name, derivative_path, discover_scans, match_participants, parse_entities,
                             read_participants)
from rviflow.errors import InputError

SP = "MNI152NLin2009cAsym"


def _touch(root, rel):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("x")


def _run(root, sub, ses=None, run=None, confounds=True, mask=True, task="rest", space=SP):
    folder = f"sub-{sub}" + (f"/ses-{ses}" if ses else "") + "/func"
    ents = f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + f"_task-{task}" + (f"_run-{run}" if run else "")
    _touch(root, f"{folder}/{ents}_space-{space}_desc-preproc_bold.nii.gz")
    if confounds:
        _touch(root, f"{folder}/{ents}_desc-confounds_timeseries.tsv")
    if mask:
        _touch(root, f"{folder}/{ents}_space-{space}_desc-brain_mask.nii.gz")


def test_discovery_sessions_runs_and_problems(tmp_path):
    _run(tmp_path, "01")
    _run(tmp_path, "02", ses="1", run="1")
    _run(tmp_path, "02", ses="1", run="2")
    _run(tmp_path, "02", ses="2")
    _run(tmp_path, "03", confounds=False)
    _run(tmp_path, "04", mask=False)
    _run(tmp_path, "05", task="motor")
    _run(tmp_path, "06", space="T1w")  # only in another space: a QC row naming it
    _run(tmp_path, "01", space="T1w")  # in the configured space too: nothing to report
    scans, problems = discover_scans(tmp_path, "rest", SP)
    keys = [s.key for s in scans]
    assert keys == ["sub-01/func/sub-01_task-rest", "sub-02/ses-1/func/sub-02_ses-1_task-rest_run-1",
                    "sub-02/ses-1/func/sub-02_ses-1_task-rest_run-2", "sub-02/ses-2/func/sub-02_ses-2_task-rest"]
    assert [s.session for s in scans] == [None, "1", "1", "2"]
    assert [(p["participant_id"], p["reason"].split(":")[0]) for p in problems[:2]] == [
        ("sub-03", "confounds file missing"), ("sub-04", "brain mask missing")]
    assert len(problems) == 3 and problems[2]["participant_id"] == "sub-06"
    assert problems[2]["reason"] == (f"{tmp_path}/sub-06/func/sub-06_task-rest_space-T1w_desc-preproc_bold.nii.gz: "
                                     f"preprocessed BOLD is in space-T1w, not space-{SP} (the atlas space): "
                                     f"add {SP} to fMRIPrep's --output-spaces")
    problems = problems[:2]

    participants = pd.DataFrame({"participant_id": ["sub-01", "sub-03", "sub-07"]})
    kept, rows = match_participants(scans, problems, participants)
    assert [s.participant_id for s in kept] == ["sub-01"]
    reasons = {(r["participant_id"], r["reason"].split(" (")[0].split(":")[0]) for r in rows}
    assert ("sub-02", "has data") in reasons and ("sub-07", "in participants.tsv but no preprocessed BOLD found "
                                                           "for the task and space") in reasons


def test_names_and_paths():
    ents = parse_entities("sub-01_ses-2_task-rest_run-3_space-MNI_desc-preproc_bold.nii.gz")
    assert ents == {"sub": "01", "ses": "2", "task": "rest", "run": "3", "space": "MNI", "desc": "preproc"}
    assert bids_name({"task": "rest", "sub": "01", "run": "3"}, "bold", ".json") == "sub-01_task-rest_run-3_bold.json"
    p = derivative_path("/o", "sub-01/func/sub-01_task-rest", "MNI", "reho", "bold", ".nii.gz")
    assert str(p) == "/o/sub-01/func/sub-01_task-rest_space-MNI_desc-reho_bold.nii.gz"


def test_participants_checks(tmp_path):
    f = tmp_path / "participants.tsv"
    f.write_text("participant_id\tdiagnosis\tage\nsub-01\tMDD\t30\n")
    with pytest.raises(InputError, match="column\\(s\\) site missing"):
        read_participants(f, ["diagnosis", "age", "site"])
    f.write_text("participant_id\tdiagnosis\n01\tMDD\n")
    with pytest.raises(InputError, match="'01' is not of the form sub-<label>"):
        read_participants(f, ["diagnosis"])
    f.write_text("participant_id\tdiagnosis\nsub-01\tMDD\nsub-01\tHC\n")
    with pytest.raises(InputError, match="sub-01 appears more than once"):
        read_participants(f, ["diagnosis"])
