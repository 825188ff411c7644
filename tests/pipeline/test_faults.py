"""Faults, with real processes: runs killed (SIGKILL of the whole process group) in the middle of
per-subject jobs and of a cohort job and then re-run, two runs on one output_dir, and a disk-full
or permission error while writing an output.

Runs start as users start them, ``rviflow run --configfile ... --cores 2`` (the local profile:
keep-going, rerun-incomplete; rviflow's lock on the output_dir), each in its own session so that
the test can kill the run and all its jobs at once. The moment of a kill is chosen by polling
/proc for the job scripts Snakemake is running (``.snakemake/scripts/tmpXXXX.<script>.py``).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import (MACHINERY_CONFIG, assert_same_outputs, derivative_files, jobs_that_ran, output_mtimes,
                      write_config)

pytestmark = pytest.mark.workflow
SPACE = "MNI152NLin2009cAsym"
SUBJECTS = ["sub-001", "sub-002", "sub-003", "sub-004"]
#: job scripts of the per-subject rules; every other job script is a cohort-level one
PER_SUBJECT_SCRIPTS = {"denoise", "reho", "parcellate", "cbf", "batch"}  # batch: a per-scan chain job too
_JOB_SCRIPT = re.compile(r"\.snakemake/scripts/tmp\w+\.(\w+)\.py")
CLEARED = "rviflow run: clearing the Snakemake lock a stopped run left"


def _start(cfg: Path, cwd: Path, log: Path, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    """``rviflow run`` in a new session (its own process group), output to ``log``."""
    cwd.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        return subprocess.Popen([*prefix, sys.executable, "-m", "rviflow.cli", "run", "--configfile", str(cfg),
                                 "--cores", "2"], cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True, env=dict(os.environ, NIPYPE_NO_ET="1"))


def _finish(proc: subprocess.Popen, log: Path, timeout: int = 900) -> str:
    """The run's Snakemake log (the file `rviflow run` names; its console shows progress lines)
    with the console lines of `rviflow run` itself (lock messages)."""
    proc.wait(timeout=timeout)
    console = log.read_text()
    full = re.search(r"Snakemake's full log: (\S+)", console)
    assert full, console[-3000:]
    own = [ln for ln in console.splitlines() if ln.startswith("rviflow run:")]
    return Path(full.group(1)).read_text() + "\n".join(own) + "\n"


def _job_scripts(pgid: int) -> set[str]:
    """Snakemake job scripts now running in process group ``pgid``."""
    found = set()
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and os.getpgid(int(d.name)) == pgid:
                found.update(_JOB_SCRIPT.findall((d / "cmdline").read_bytes().decode(errors="replace")))
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile
    return found


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> None:
    """SIGKILL the run's whole process group as soon as ``ready()`` holds."""
    end = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the run ended before the moment to kill it"
        assert time.monotonic() < end, "the moment to kill the run never came"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def _incomplete(workdir: Path) -> set[str]:
    """Outputs Snakemake marked incomplete (job started, not finished): .snakemake/incomplete/
    has a file per output named by the urlsafe base64 of its path (long names split over
    folders, '@'-prefixed)."""
    root = workdir / ".snakemake" / "incomplete"
    return {base64.urlsafe_b64decode("".join(p.lstrip("@") for p in f.relative_to(root).parts)).decode()
            for f in root.rglob("*") if f.is_file() and f.name != "migration_underway"}


def _complete_files(out: Path) -> None:
    """Every file under its final name reads whole: atomic writes leave no half-written one."""
    for rel in derivative_files(out):
        path = out / rel
        if path.name.endswith(".nii.gz"):
            np.asarray(nib.load(path).dataobj)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".tsv":
            pd.read_csv(path, sep="\t")


def _done(work: Path, out: Path) -> list[str]:
    """Subjects whose last per-subject output is written and whose jobs Snakemake has closed."""
    incomplete = _incomplete(work)
    return [s for s in SUBJECTS if (out / s / "func" / f"{s}_task-rest_space-{SPACE}_desc-reho_parcels.json").exists()
            and not any(f"/{s}/" in f for f in incomplete)]


def _error_of(check, *args) -> str | None:
    """repr of the error ``check(*args)`` raises, or None."""
    try:
        check(*args)
    except Exception as exc:  # noqa: BLE001 (reported by the test that asserts on it)
        return repr(exc)
    return None


def _wait_for(cond, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``cond()`` while ``proc`` runs."""
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None and time.monotonic() < end, "condition never met"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from rviflow.synth.cohort import write_cohort

    return write_cohort(tmp_path_factory.mktemp("faults") / "cohort", n_subjects=4, seed=13, n_sites=2, asl=False)


@pytest.fixture(scope="module")
def reference(cohort, tmp_path_factory):
    """An uninterrupted run: the output tree every interrupted one must end up equal to."""
    root = tmp_path_factory.mktemp("reference")
    out = root / "out"
    cfg = write_config(root / "config.yaml", cohort, out, **MACHINERY_CONFIG)
    log = _finish(_start(cfg, root / "work", root / "run.log"), root / "run.log")
    assert (out / "group" / "effect_sizes.tsv").exists(), log[-3000:]
    return out


@pytest.fixture(scope="module")
def killed_in_subjects(cohort, reference, tmp_path_factory):
    """Killed while per-subject jobs run (at least one subject done), then re-run; while the
    re-run goes, two more runs on the same output_dir are started (same and other directory)."""
    root = tmp_path_factory.mktemp("killed_subjects")
    work, out = root / "work", root / "out"
    cfg = write_config(root / "config.yaml", cohort, out, **MACHINERY_CONFIG)
    proc = _start(cfg, work, root / "killed.log")
    _kill_when(proc, lambda: _done(work, out) and _job_scripts(proc.pid) & PER_SUBJECT_SCRIPTS)
    done = _done(work, out)
    state = dict(done=done, incomplete=_incomplete(work), mtimes=output_mtimes(out, done),
                 complete_error=_error_of(_complete_files, out), locks=list((work / ".snakemake" / "locks").glob("*")))

    rerun = _start(cfg, work, root / "rerun.log")
    lock = out / ".rviflow.lock"
    _wait_for(lambda: lock.exists() and lock.read_text().strip() == str(rerun.pid), rerun)
    state["second"] = [subprocess.run([sys.executable, "-m", "rviflow.cli", "run", "--configfile", str(cfg)],
                                      cwd=cwd, capture_output=True, text=True, timeout=120)
                       for cwd in (work, root)]  # same working directory, and another one
    state["rerun_alive"] = rerun.poll() is None
    state["log"] = _finish(rerun, root / "rerun.log")
    state.update(rc=rerun.returncode, rerun_pid=rerun.pid, out=out, work=work, cfg=cfg, root=root)
    return state


def test_kill_in_subject_jobs_then_rerun_finishes_equal_to_reference(killed_in_subjects, reference):
    s = killed_in_subjects
    assert s["locks"], "the kill left no Snakemake lock (nothing to clear)"
    assert 0 < len(s["done"]) < len(SUBJECTS), s["done"]
    assert any(f.startswith(str(s["out"])) for f in s["incomplete"]), "no job was running at the kill"
    assert s["complete_error"] is None, s["complete_error"]
    assert s["rc"] == 0, s["log"][-4000:]
    assert CLEARED in s["log"]
    assert_same_outputs(reference, s["out"])  # also: no temporary or half-written file left


def test_subjects_done_before_the_kill_are_not_recomputed(killed_in_subjects):
    s = killed_in_subjects
    assert s["mtimes"] and s["mtimes"] == output_mtimes(s["out"], s["done"])
    reran = {sub for _, sub in jobs_that_ran(s["log"]) if sub}
    assert reran == set(SUBJECTS) - set(s["done"]), (reran, s["done"])


def test_second_run_on_the_same_output_dir_refuses(killed_in_subjects):
    s = killed_in_subjects
    assert s["rerun_alive"], "the first run ended before the second one was tried"
    for second in s["second"]:
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 1 and len(lines) == 1, second.stderr[-2000:]
        assert lines[0].startswith(f"rviflow run: another rviflow run (pid {s['rerun_pid']}) is using output_dir "
                                   f"{s['out']}"), lines[0]


@pytest.fixture(scope="module")
def killed_in_cohort(killed_in_subjects, cohort):
    """The finished output tree of ``killed_in_subjects`` after an edit of participants.tsv that
    changes no number (a column the run does not use; only the cohort rules re-run), killed while
    a cohort job runs, then re-run."""
    s = killed_in_subjects
    work, out = s["work"], s["out"]
    participants = pd.read_csv(cohort["participants"], sep="\t")
    participants.assign(handedness="R").to_csv(cohort["participants"], sep="\t", index=False, na_rep="n/a")
    before = output_mtimes(out, SUBJECTS)
    proc = _start(s["cfg"], work, s["root"] / "cohort_killed.log")
    _kill_when(proc, lambda: any(f.startswith(str(out / "group")) for f in _incomplete(work))
               and bool(_job_scripts(proc.pid) - PER_SUBJECT_SCRIPTS))
    state = dict(before=before, incomplete=_incomplete(work), complete_error=_error_of(_complete_files, out))
    rerun = _start(s["cfg"], work, s["root"] / "cohort_rerun.log")
    state["log"] = _finish(rerun, s["root"] / "cohort_rerun.log")
    state.update(rc=rerun.returncode, out=out)
    return state


def test_kill_in_cohort_job_then_rerun_finishes_equal_to_reference(killed_in_cohort, reference):
    s = killed_in_cohort
    assert any(f.startswith(str(s["out"] / "group")) for f in s["incomplete"]), s["incomplete"]
    assert s["complete_error"] is None, s["complete_error"]
    assert s["rc"] == 0, s["log"][-4000:]
    assert CLEARED in s["log"]
    assert_same_outputs(reference, s["out"])
    assert s["before"] == output_mtimes(s["out"], SUBJECTS)  # no per-subject output rewritten
    assert not {sub for _, sub in jobs_that_ran(s["log"]) if sub}  # only cohort jobs ran


# ----------------------------------------------------------------- disk full, no permission
def _mount_tmpfs(path: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` on ``path``; the reason it cannot be done, or None."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return "not root"
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                          capture_output=True, text=True)
    return None if proc.returncode == 0 else proc.stderr.strip() or f"mount exited {proc.returncode}"


@pytest.fixture(scope="module")
def write_faults(cohort, tmp_path_factory):
    """The 4 subjects into a new output_dir where sub-003's folder is a 64 kB tmpfs (its maps do
    not fit: ENOSPC) and sub-004's func/ is read-only to the run (mode 555, the run
    without root's CAP_DAC_OVERRIDE: EACCES). Snakemake removes a failed job's empty output
    folders, so the tmpfs is mounted one level up, where that stops."""
    root = tmp_path_factory.mktemp("write_faults")
    out = root / "out"
    full, locked = out / "sub-003", out / "sub-004" / "func"
    for d in (full, locked):
        d.mkdir(parents=True)
    why = "setpriv (util-linux) missing" if not shutil.which("setpriv") else _mount_tmpfs(full, "64k")
    if why is not None:
        print(f"test_faults: cannot mount a tmpfs ({why}); the disk-full case is left to the unit tests")
        pytest.skip(f"cannot mount a tmpfs here: {why}")
    try:
        locked.chmod(0o555)
        prefix = ("setpriv", "--inh-caps=-dac_override,-dac_read_search",
                  "--bounding-set=-dac_override,-dac_read_search", "--")
        cfg = write_config(root / "config.yaml", cohort, out, **MACHINERY_CONFIG)
        proc = _start(cfg, root / "work", root / "run.log", prefix)
        log = _finish(proc, root / "run.log")
        left = {sub: sorted(str(p.relative_to(out)) for p in (out / sub).rglob("*") if p.is_file())
                for sub in ("sub-003", "sub-004")}
        yield proc.returncode, log, out, left
    finally:
        subprocess.run(["umount", str(full)], check=False)
        if locked.exists():  # (removed by Snakemake once empty)
            locked.chmod(0o755)


@pytest.mark.parametrize("sub, error", [("sub-003", "No space left on device (ENOSPC)"),
                                        ("sub-004", "Permission denied (EACCES)")])
def test_write_fault_fails_the_job_with_one_line(write_faults, sub, error):
    rc, log, out, left = write_faults
    assert rc != 0 and "Traceback" not in log, log[-3000:]
    lines = [ln for ln in log.splitlines() if ln.startswith("rviflow ") and f" {sub}:" in ln]
    assert len(lines) == 1, lines
    # the per-scan chain job (reho_scan) holds the denoised series in memory: its first write
    # into the subject's folder (a sidecar or map of the chain) is the one that fails
    written = re.match(rf"rviflow (\w+): {sub}: cannot write (\S+): ", lines[0])
    assert written and written.group(2).startswith(str(out / sub / "func" / f"{sub}_task-rest_space-{SPACE}_desc-")) \
        and lines[0].endswith(error), lines[0]
    assert left[sub] == [], left[sub]  # nothing under the final name, no temporary left
    rule_log = (out / "logs" / "reho_scan" / sub / "func" / f"{sub}_task-rest.log").read_text()
    assert rule_log.endswith(lines[0] + "\n") and "Traceback" not in rule_log, rule_log  # the job's log says it
    for good in ("sub-001", "sub-002"):  # the other subjects ran on (keep-going)
        assert (out / good / "func" / f"{good}_task-rest_space-{SPACE}_desc-reho_parcels.tsv").exists()


# ----------------------------------------------------------------------- unit level, no mount
def _partial_then(code: int):
    """A writer that leaves half a file at the name it was given, then fails with ``code``."""
    def write(target, *args, **kwargs):
        name = target if isinstance(target, (str, Path)) else getattr(target, "name", None)
        if name is None:  # a file object (json.dump(obj, fp)): write into it
            args[0].write("{half")
            name = args[0].name
        else:
            Path(name).write_bytes(b"half")
        raise OSError(code, os.strerror(code), str(name))
    return write


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
@pytest.mark.parametrize("writer", ["save_nifti", "write_json", "write_tsv"])
def test_atomic_writers_fail_in_one_line_and_leave_nothing(tmp_path, monkeypatch, writer, code):
    from rviflow.io import bids as bids_io
    from rviflow.errors import OutputError

    final = tmp_path / "sub-01" / {"save_nifti": "x.nii.gz", "write_json": "x.json", "write_tsv": "x.tsv"}[writer]
    if writer == "save_nifti":
        monkeypatch.setattr(nib, "save", lambda img, path: _partial_then(code)(path))
        img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
        call = lambda: bids_io.save_nifti(img, final)  # noqa: E731
    elif writer == "write_json":
        monkeypatch.setattr(json, "dump", lambda obj, fp, **kw: _partial_then(code)(None, fp))
        call = lambda: bids_io.write_json(final, {"a": 1})  # noqa: E731
    else:
        monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, path, **kw: _partial_then(code)(path))
        call = lambda: bids_io.write_tsv(pd.DataFrame({"a": [1]}), final)  # noqa: E731
    with pytest.raises(OutputError) as info:
        call()
    msg = str(info.value)
    assert msg == f"cannot write {final}: {os.strerror(code)} ({errno.errorcode[code]})", msg
    assert info.value.errno == code and isinstance(info.value, OSError)
    assert list(final.parent.iterdir()) == []  # neither the final name nor the temporary


def test_atomic_write_removes_a_killed_writers_temporary(tmp_path):
    from rviflow.io.bids import write_json

    (tmp_path / ".tmp999-x.json").write_text("{half")  # left by a writer killed mid-write
    write_json(tmp_path / "x.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


@pytest.mark.parametrize("on_error", ["exclude", "fail"])
def test_step_write_fault_through_nipype_fails_in_one_line(tmp_path, monkeypatch, on_error):
    """A disk-full error inside a nipype node (which wraps it in its own error) ends the step with
    one line naming subject, file and OS error, whatever on_error; no failed-status sidecar."""
    from rviflow.preprocess.parcellate import default_atlas
    from rviflow.pipeline.steps import parcellate_step
    from rviflow.synth.cohort import synthetic_grid

    atlas, _, mask = synthetic_grid()
    reho = tmp_path / "reho.nii.gz"
    nib.save(nib.Nifti1Image(np.where(mask, 0.5, 0).astype(np.float32), atlas.affine), reho)
    valid = tmp_path / "valid.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), atlas.affine), valid)
    side = tmp_path / "reho.json"
    side.write_text(json.dumps({"status": "ok"}))
    out_tsv, out_json = tmp_path / "out" / "p.tsv", tmp_path / "out" / "p.json"
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, path, **kw: _partial_then(errno.ENOSPC)(path))
    image, labels = default_atlas()
    with pytest.raises(SystemExit) as info:
        parcellate_step(str(reho), str(side), str(valid), image, labels, "reho", str(out_tsv), str(out_json),
                        str(tmp_path / "work"), "sub-07", "", on_error=on_error, log=str(tmp_path / "step.log"),
                        min_coverage=0.0, min_regions=0.5)
    msg = str(info.value.code)
    assert msg == f"rviflow parcellate: sub-07: cannot write {out_tsv}: No space left on device (ENOSPC)", msg
    assert (tmp_path / "step.log").read_text() == msg + "\n"
    assert list(out_tsv.parent.iterdir()) == []  # no table, no temporary, no failed-status sidecar
