"""Session choice and run / acquisition combination (rviflow.io.scans), participants.tsv checks
(rviflow.io.bids.clean_participants), discovery of real fMRIPrep layouts (bids-examples
ds000001-fmriprep, 7t_trt; tests/data/real_layouts) and cohort-rule failure markers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layouts import DATA
from rviflow.io.bids import clean_participants, discover_scans, read_participants
from rviflow.errors import InputError
from rviflow.pipeline.outcome import cohort_rule, failure_of, run_summary
from rviflow.io.scans import analysed_sessions, combine_scans, session_times


def _scans(rng, runs=("1", "2", "3"), kept=(100, 50, 150), fd=(0.3, 0.1, 0.2), pid="sub-01", ses="", acq=""):
    regions = [f"r{i}" for i in range(5)]
    df = pd.DataFrame(rng.normal(size=(len(runs), 5)), columns=regions)
    df.insert(0, "participant_id", pid)
    df.insert(1, "session", ses)
    df.insert(2, "run", list(runs))
    df.insert(3, "acq", acq)
    df.insert(4, "n_volumes_kept", list(kept))
    df.insert(5, "mean_fd_mm", list(fd))
    return df, regions


def test_runs_mean_is_weighted_by_kept_volumes():
    rng = np.random.default_rng(0)
    scans, regions = _scans(rng)
    table, record = combine_scans(scans, "mean")
    w = np.array([100, 50, 150]) / 300
    # reference: the weighted mean written out by hand
    expected = sum(w[i] * scans.loc[i, regions].to_numpy(float) for i in range(3))
    assert np.allclose(table.loc[0, regions].to_numpy(float), expected)
    assert record[0]["n_scans"] == 3 and "run-1 (w=0.33)" in record[0]["scans"]


def test_runs_first_lowest_motion_and_missing_region():
    rng = np.random.default_rng(1)
    scans, regions = _scans(rng, runs=("2", "10", "1"))
    first, rec = combine_scans(scans, "first")
    assert np.array_equal(first.loc[0, regions].to_numpy(float), scans.loc[2, regions].to_numpy(float))  # run-1
    assert rec[0]["scans"] == "run-1"
    low, rec = combine_scans(scans, "lowest_motion")
    assert np.array_equal(low.loc[0, regions].to_numpy(float), scans.loc[1, regions].to_numpy(float))  # fd 0.1
    scans.loc[0, "r0"] = np.nan  # a region outside one run's coverage: from the runs that have it
    mean, _ = combine_scans(scans, "mean")
    w = np.array([50, 150]) / 200
    assert np.isclose(mean.loc[0, "r0"], w @ scans.loc[[1, 2], "r0"].to_numpy(float))


def test_voxel_size_warning():
    from rviflow.io.scans import voxel_size_warning

    scans, _ = _scans(np.random.default_rng(3))
    scans["voxel_size_mm"] = ["2x2x2", "2x2x2", "2.4x2.4x2.4"]
    line = voxel_size_warning(scans)
    assert "2x2x2 mm: 2 scans, 2.4x2.4x2.4 mm: 1 scans" in line and "counted in voxels" in line
    assert voxel_size_warning(scans.iloc[:2]) is None
    table, _ = combine_scans(scans, "mean")  # the voxel size is not a region
    assert "voxel_size_mm" not in table.columns and table.shape[1] == 2 + 5


def test_several_sessions_in_the_table_are_refused():
    rng = np.random.default_rng(2)
    a, _ = _scans(rng, ses="pre")
    b, _ = _scans(rng, ses="post")
    with pytest.raises(InputError, match="several sessions"):
        combine_scans(pd.concat([a, b], ignore_index=True), "mean")
    table, _ = combine_scans(pd.concat([a, b], ignore_index=True), "mean", sessions={"sub-01": "pre"})
    assert list(table["session"]) == ["pre"]


def test_session_is_never_chosen_alphabetically():
    available = {"sub-01": ["post", "pre"], "sub-02": ["post", "pre"], "sub-03": ["post"]}
    with pytest.raises(InputError) as err:
        analysed_sessions(available)
    msg = str(err.value)
    assert "ses-post, ses-pre" in msg and "`session`" in msg and "\n" not in msg
    chosen, excluded = analysed_sessions(available, "pre")
    assert chosen == {"sub-01": "pre", "sub-02": "pre"}
    assert excluded[0]["participant_id"] == "sub-03" and "no ses-pre" in excluded[0]["reason"]
    # acq_time in sessions.tsv: the earliest session (pre here, although "post" sorts first)
    times = {p: {"pre": "2020-01-01T10:00:00", "post": "2020-06-01T10:00:00"} for p in ("sub-01", "sub-02")}
    times["sub-03"] = {"post": "2020-06-03T09:00:00"}
    chosen, _ = analysed_sessions(available, "", times)
    assert chosen == {"sub-01": "pre", "sub-02": "pre", "sub-03": "post"}
    assert analysed_sessions({"sub-01": [""], "sub-02": [""]})[0] == {"sub-01": "", "sub-02": ""}


def test_session_times_from_bids_sessions_tsv(tmp_path):
    # 7t_trt's real sessions.tsv has no acq_time column: no date, so no automatic choice
    (tmp_path / "sub-01").mkdir()
    (tmp_path / "sub-01" / "sub-01_sessions.tsv").write_text((DATA / "7t_trt_sub-01_sessions.tsv").read_text())
    assert session_times(tmp_path, ["sub-01"]) == {}
    (tmp_path / "sub-02").mkdir()
    (tmp_path / "sub-02" / "sub-02_sessions.tsv").write_text(
        "session_id\tacq_time\nses-post\t2021-03-01T09:00:00\nses-pre\t2020-11-02T10:30:00\n")
    assert session_times(tmp_path, ["sub-01", "sub-02"]) == {
        "sub-02": {"post": "2021-03-01T09:00:00", "pre": "2020-11-02T10:30:00"}}


def test_participants_every_problem_at_once(tmp_path):
    """ds001's real participants.tsv (sex, age) with a diagnosis column and the mess of real
    tables: n/a, a third label, a trailing space, '89+', numeric labels."""
    p = pd.read_csv(DATA / "ds001_participants.tsv", sep="\t", dtype=str)
    p["diagnosis"] = ["MDD", "HC"] * 8
    p["site"] = "A"
    p["HAMD"] = "7"
    p.loc[1, "diagnosis"] = "n/a"
    p.loc[2, "diagnosis"] = "BD"
    p.loc[3, "diagnosis"] = "MDD "
    p.loc[4, "age"] = "89+"
    p.loc[5, "age"] = "n/a"
    path = tmp_path / "participants.tsv"
    p.to_csv(path, sep="\t", index=False)
    raw = read_participants(path, ["diagnosis", "age", "sex"], numeric=())
    clean, problems = clean_participants(raw, "diagnosis", "MDD", "HC", ["age", "sex"], "site", ["hamd", "bdi"])
    by = {(q["participant_id"], q["column"]): q for q in problems}
    assert set(by) == {("sub-02", "diagnosis"), ("sub-03", "diagnosis"), ("sub-05", "age"), ("sub-06", "age")}
    assert by[("sub-03", "diagnosis")]["reason"] == ("diagnosis = 'BD' is neither case 'MDD' nor control 'HC': left "
                                                    "out (config groups.case / groups.control)")
    assert "'89+' is not a number (config covariates)" in by[("sub-05", "age")]["reason"]
    assert len(clean) == 12 and "sub-04" in set(clean["participant_id"])  # 'MDD ' accepted as MDD
    assert clean["age"].dtype.kind == "f" and "hamd" in clean.columns  # HAMD matched case-insensitively
    # numeric labels (case: 1 in YAML)
    raw["dx"] = [1, 0] * 8
    clean, problems = clean_participants(raw, "dx", "1", "0", [], "", [])
    assert not problems and set(clean["dx"]) == {"1", "0"}


def test_real_fmriprep_layouts_are_discovered(tmp_path):
    """File names of bids-examples ds000001-fmriprep (fMRIPrep 20.2: res-2, run-1..3, task
    balloonanalogrisktask) and 7t_trt (ses-1/2, acq-fullbrain run-1/2, acq-prefrontal)."""
    for line in (DATA / "ds000001-fmriprep_func_files.txt").read_text().split():
        f = tmp_path / "ds" / line.split("/", 1)[1]
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"")
    scans, problems = discover_scans(tmp_path / "ds", "balloonanalogrisktask", "MNI152NLin2009cAsym")
    assert len(scans) == 12 and not problems
    assert {s.ents["run"] for s in scans} == {"1", "2", "3"} and {s.ents["res"] for s in scans} == {"2"}
    # the same run in native resolution too: refused in one line naming both and the key
    native = tmp_path / "ds" / "sub-10" / "func" / "sub-10_task-balloonanalogrisktask_run-1_space-MNI152NLin2009cAsym"
    for suffix in ("_desc-preproc_bold.nii.gz", "_desc-brain_mask.nii.gz"):
        (native.parent / (native.name + suffix)).write_bytes(b"")
    with pytest.raises(InputError, match=r"2 resolutions \(native \(no res-\), res-2\): set `res`"):
        discover_scans(tmp_path / "ds", "balloonanalogrisktask", "MNI152NLin2009cAsym")
    chosen, _ = discover_scans(tmp_path / "ds", "balloonanalogrisktask", "MNI152NLin2009cAsym", res="2", run="1")
    assert len(chosen) == 4 and {s.ents["run"] for s in chosen} == {"1"}
    # 7t_trt: fMRIPrep 1.4-20.1 naming (confounds _regressors) and uncompressed .nii
    for line in (DATA / "7t_trt_func_files.txt").read_text().split()[:6]:
        name = line.split("/")[-1].replace("_bold.nii.gz", "")
        f = tmp_path / "trt" / "/".join(line.split("/")[1:-1]) / name
        f.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("_space-MNI152NLin2009cAsym_desc-preproc_bold.nii", "_space-MNI152NLin2009cAsym_desc-brain_mask.nii",
                       "_desc-confounds_regressors.tsv"):
            (f.parent / (name + suffix)).write_bytes(b"")
    scans, problems = discover_scans(tmp_path / "trt", "rest", "MNI152NLin2009cAsym")
    assert not problems and len(scans) == 6
    assert {s.ents.get("acq") for s in scans} == {"fullbrain", "prefrontal"} and {s.session for s in scans} == {"1", "2"}
    assert all(s.confounds.endswith("_desc-confounds_regressors.tsv") and s.mask.endswith(".nii") for s in scans)
    assert len(discover_scans(tmp_path / "trt", "rest", "MNI152NLin2009cAsym", acq="fullbrain")[0]) == 4


def test_failed_cohort_rule_writes_markers_and_downstream_skips(tmp_path):
    out = [tmp_path / "a.tsv", tmp_path / "b.pkl"]
    with cohort_rule("rvi", [], out) as go:
        assert go
        raise InputError("reho: 2 cases and 1 controls in a training fold")
    reason = failure_of(out[0])
    assert reason.startswith("reho: 2 cases") and "cohort.rvi.enabled: false" in reason
    assert failure_of(out[1]) == reason and "Traceback" not in reason
    down = tmp_path / "c.tsv"
    with cohort_rule("effect_summaries", [out[0]], [down]) as go:
        assert not go
    assert failure_of(down).startswith("not run: a.tsv failed")
    qc = tmp_path / "qc.tsv"
    qc.write_text("participant_id\tsession\tstep\tstatus\treason\nsub-01\t\tcohort_reho\tok\t\nsub-02\t\tdenoise\tfailed\tx\n")
    line = run_summary(qc, tmp_path / "report.html", {"group/rvi.tsv": reason})
    assert line.startswith("rviflow: 1 subjects included, 1 excluded") and "no report" in line


def test_analysed_scans_keeps_the_session_and_usable_subjects(tmp_path):
    from rviflow.io.bids import Scan
    from rviflow.io.scans import analysed_scans

    def scan(pid, ses, run):
        return Scan(pid, ses, (("run", run), ("ses", ses), ("sub", pid[4:])), "b", "c", "m",
                    f"{pid}/ses-{ses}/func/{pid}_ses-{ses}_task-rest_run-{run}")

    scans = [scan(p, s, r) for p in ("sub-01", "sub-02", "sub-03") for s in ("post", "pre") for r in ("1", "2")]
    scans = [s for s in scans if not (s.participant_id == "sub-02" and s.session == "pre")]  # sub-02: post only
    kept, rows, chosen = analysed_scans(scans, {"sub-03": "diagnosis = n/a is missing (config groups.column)"}, "pre")
    assert {(s.participant_id, s.session) for s in kept} == {("sub-01", "pre")} and len(kept) == 2
    by = {(r["participant_id"], r["step"]): r for r in rows}
    assert by[("sub-03", "participants")]["status"] == "failed"
    assert "no ses-pre" in by[("sub-02", "session")]["reason"] and by[("sub-02", "session")]["status"] == "failed"
    assert by[("sub-01", "session")]["reason"].startswith("ses-pre analysed (config session); found: ses-post, ses-pre")
    with pytest.raises(InputError, match="several sessions"):
        analysed_scans(scans, {}, "", tmp_path)
