"""`rviflow run` end to end, not on a terminal (issue #19): --participant-label runs only those
subjects' per-scan jobs (the dry run lists exactly what then runs), the cohort stage takes every
finished subject, batch_size auto switches to batches as the cohort grows without recomputing
finished scans, and the console shows one plain progress line per step with Snakemake's full log
in a file.

One cohort of 8 subjects (2 sites; sub-001..004: 2 MDD + 2 HC), three real runs:
1. ``--participant-label 001 002 003 004`` (dry run first, then the run);
2. ``--participant-label 005 006``: only their per-scan jobs, the cohort stage on all six;
3. sub-007 / sub-008 arrive with ``batch_auto.min_scans: 8``: the chain is batched; the six finished
   scans are kept (files untouched), the two new ones computed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from conftest import MACHINERY_CONFIG, finished_jobs, output_mtimes, write_config

pytestmark = pytest.mark.workflow
PER_SCAN = {"reho_scan"}  # per-scan mode: one job per scan (denoise -> ReHo -> parcels)


def rviflow(*args, cwd) -> subprocess.CompletedProcess:
    """`rviflow` (this venv's) with stdout/stderr piped: not a terminal."""
    return subprocess.run([sys.executable, "-m", "rviflow.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=1500)


def full_log(console: str):
    """The log file a run names at its start and end (both lines must name the same file)."""
    paths = re.findall(r"Snakemake's full log: (\S+)", console)
    assert len(paths) == 2 and paths[0] == paths[1], console[-3000:]
    from pathlib import Path

    return Path(paths[0]).read_text()


@pytest.fixture(scope="module")
def subset_runs(tmp_path_factory):
    from rviflow.synth.cohort import write_cohort

    root = tmp_path_factory.mktemp("subset")
    cohort = write_cohort(root / "cohort", n_subjects=8, seed=11, n_sites=2, asl=False)
    held = root / "held"
    participants = pd.read_csv(cohort["participants"], sep="\t", dtype=str)
    late = ["sub-007", "sub-008"]
    for sub in late:
        shutil.move(cohort["fmriprep"] / sub, held / sub)
    participants[~participants["participant_id"].isin(late)].to_csv(cohort["participants"], sep="\t", index=False)
    out = root / "out"
    cfg = write_config(root / "config.yaml", cohort, out, **MACHINERY_CONFIG)
    runs = dict(out=out)
    runs["dry"] = rviflow("run", "--configfile", cfg, "--participant-label", "001", "002", "sub-003", "004", "-n",
                          cwd=root)
    runs["first"] = rviflow("run", "--configfile", cfg, "--participant-label", "001", "002", "sub-003", "004",
                            cwd=root)
    assert runs["first"].returncode == 0, (runs["first"].stdout + runs["first"].stderr)[-4000:]
    runs["first_mtimes"] = output_mtimes(out, ["sub-001", "sub-002", "sub-003", "sub-004"])
    runs["second"] = rviflow("run", "--configfile", cfg, "--participant-label", "005", "006", cwd=root)
    assert runs["second"].returncode == 0, (runs["second"].stdout + runs["second"].stderr)[-4000:]
    runs["second_mtimes"] = output_mtimes(out, ["sub-001", "sub-002", "sub-003", "sub-004"])
    runs["six_mtimes"] = output_mtimes(out, [f"sub-00{i}" for i in range(1, 7)])
    for sub in late:
        shutil.move(held / sub, cohort["fmriprep"] / sub)
    participants.to_csv(cohort["participants"], sep="\t", index=False)
    cfg3 = write_config(root / "config3.yaml", cohort, out, **MACHINERY_CONFIG, batch_auto={"min_scans": 8, "size": 4})
    runs["third"] = rviflow("run", "--configfile", cfg3, cwd=root)
    assert runs["third"].returncode == 0, (runs["third"].stdout + runs["third"].stderr)[-4000:]
    runs["third_mtimes"] = output_mtimes(out, [f"sub-00{i}" for i in range(1, 7)])
    return runs


def planned_jobs(dry_run: str) -> set[tuple[str, str]]:
    """(rule, wildcards or '') of every job a dry run lists; per-scan jobs are listed inside their
    (indented) SLURM group blocks, so each "rule X:" line starts a job wherever it is."""
    jobs, current = [], None
    for line in dry_run.splitlines():
        if (m := re.match(r"^\s*(?:local)?rule (\w+):$", line)):
            current = [m.group(1), ""]
            jobs.append(current)
        elif current and (m := re.match(r"^\s+wildcards: (.*)$", line)):
            current[1] = m.group(1)
    return {tuple(j) for j in jobs}


def _per_scan_jobs(jobs):
    return {(rule, re.search(r"sub-\d+", w).group(0)) for rule, w in jobs if rule in PER_SCAN}


def test_dry_run_shows_exactly_what_the_run_runs(subset_runs):
    dry, first = subset_runs["dry"], subset_runs["first"]
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    planned = planned_jobs(dry.stdout + dry.stderr)
    ran = finished_jobs(full_log(first.stdout + first.stderr))
    assert planned == ran
    assert _per_scan_jobs(ran) == {(r, f"sub-00{i}") for r in PER_SCAN for i in (1, 2, 3, 4)}
    assert "sub-005, sub-006: no finished BOLD outputs and not selected" in dry.stderr


def test_only_the_selected_subjects_per_scan_jobs_run(subset_runs):
    ran = finished_jobs(full_log(subset_runs["second"].stdout + subset_runs["second"].stderr))
    assert _per_scan_jobs(ran) == {(r, s) for r in PER_SCAN for s in ("sub-005", "sub-006")}
    assert {"collect_reho", "effect_sizes", "qc_table"} <= {r for r, _ in ran}
    assert subset_runs["second_mtimes"] == subset_runs["first_mtimes"]  # the first four: not rewritten
    table = pd.read_csv(subset_runs["out"] / "group" / "parcels_reho.tsv", sep="\t")
    # the cohort stage of the third run has all eight; after the second it had the six finished ones
    assert len(table) == 8


def test_batch_size_auto_switches_without_recomputing_finished_scans(subset_runs):
    ran = finished_jobs(full_log(subset_runs["third"].stdout + subset_runs["third"].stderr))
    rules = {r for r, _ in ran}
    assert "reho_batch" in rules and not PER_SCAN & rules  # 8 scans >= min_scans 8: batches of 4
    assert subset_runs["third_mtimes"] == subset_runs["six_mtimes"]  # finished scans kept as they were
    records = pd.concat(pd.read_csv(p, sep="\t") for p in (subset_runs["out"] / "work" / "batches" / "reho").glob("*.tsv"))
    assert sorted(records["participant_id"]) == [f"sub-00{i}" for i in range(1, 9)]
    assert (records["status"] == "ok").all()
    logs = "".join(p.read_text() for p in (subset_runs["out"] / "logs" / "reho_batch").glob("*.log"))
    assert logs.count("kept (finished earlier") == 6
    for sub in ("sub-007", "sub-008"):
        assert next((subset_runs["out"] / sub / "func").glob("*_desc-reho_parcels.tsv")).stat().st_size


def test_console_is_one_line_per_step_with_the_full_log_in_a_file(subset_runs):
    console = subset_runs["first"].stdout + subset_runs["first"].stderr
    log = full_log(console)
    status = [ln for ln in console.splitlines() if re.match(r"rviflow: \d+/\d+ jobs done", ln)]
    total = int(re.search(r"^total\s+(\d+)$", log, re.M).group(1))
    assert len(status) == total and status[-1].startswith(f"rviflow: {total}/{total} jobs done (100%)")
    assert all("elapsed" in ln for ln in status) and "left" in status[0]
    assert "\r" not in console  # not a terminal: plain lines
    assert "localrule" not in console and "jobid" not in console  # job blocks only in the log file
    # every Snakemake message once: no "INFO: " twin lines, no "Shell command: None"
    assert "INFO:" not in log and "Shell command: None" not in log
    assert log.count("Building DAG of jobs...") == 1
    assert re.search(r"rviflow: finished: \d+/\d+ jobs done", console)
