"""A readable run: Snakemake's full log to a file, a compact progress display on the console.

``rviflow run`` / ``rviflow demo`` start snakemake with its output piped through
:class:`Progress`: every line goes to the log file (``<output_dir>/logs/rviflow_run-<time>.log``,
its path printed at the start and the end), and the console (stderr, where Snakemake
writes) gets

- one status line: jobs done / total, failed subjects so far, elapsed and estimated remaining
  time; on a terminal it is rewritten in place, otherwise (CI, a pipe, a file) a plain line is
  printed per finished step;
- rviflow's own one-line messages (a bad subject, the end-of-run summary, config problems) and
  Snakemake's errors, as they come.

The remaining time is the elapsed time per finished job times the jobs left (jobs differ in cost,
so it is a rough guide that improves as the run goes).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import IO, Callable

#: "12 of 40 steps (30%) done"
_DONE = re.compile(r"^(\d+) of (\d+) steps \(\d+%\) done")
#: "Finished jobid: 11 (Rule: denoise)" (Snakemake 9)
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")
#: a job block's header and its wildcards line
_RULE = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
#: "Error in rule reho:"
_ERROR = re.compile(r"^Error in rule (\w+):")
#: rviflow's one-line messages: "rviflow <step>: sub-07: ..." or "rviflow: ..."
_RVIFLOW = re.compile(r"^rviflow[ :]")
_SUBJECT = re.compile(r"^rviflow [\w-]+: (sub-[A-Za-z0-9]+):")
#: Snakemake lines always worth showing
_SHOW = re.compile(r"^(Error|WorkflowError|MissingInputException|IncompleteFilesException|LockException|"
                   r"Exiting because|Nothing to be done|Would remove|Job stats|ValueError|KeyError)")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Consume Snakemake's output line by line (:meth:`feed`), keep all of it in ``log``, show
    the progress on ``console``.

    ``tty``: rewrite one status line in place (default: whether ``console`` is a terminal).
    """

    def __init__(self, log: str | Path, console: IO[str] | None = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.log_path = Path(log)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", buffering=1)
        self.console = console or sys.stderr
        self.tty = self.console.isatty() if tty is None else tty
        self.clock = clock
        self.start = clock()
        self.done = 0
        self.total = 0
        self.failed_subjects: list[str] = []
        self.failed_jobs: list[str] = []
        self._jobs: dict[str, str] = {}  # jobid -> "rule wildcards"
        self._block: list[str] = []  # the job block being read: [rule, jobid, wildcards]
        self._status_shown = False

    # --- input -------------------------------------------------------------------------------
    def feed(self, line: str) -> None:
        """One line of Snakemake's output (with or without its newline)."""
        line = line.rstrip("\n")
        self._log.write(line + "\n")
        if (m := _RULE.match(line)):
            self._block = [m.group(1), "", ""]
        elif self._block and (m := _JOBID.match(line)):
            self._block[1] = m.group(1)
            self._jobs[m.group(1)] = self._block[0]
        elif self._block and (m := _WILDCARDS.match(line)):
            what = self._describe(self._block[0], m.group(1))
            if self._block[1]:
                self._jobs[self._block[1]] = what
        elif (m := _DONE.match(line)):
            self.done, self.total = int(m.group(1)), int(m.group(2))
            self._status()
        elif (m := _FINISHED.match(line)):
            self._last = self._jobs.get(m.group(1), m.group(2))
        elif (m := _ERROR.match(line)):
            self.failed_jobs.append(m.group(1))
            self._say(line)
        elif _RVIFLOW.match(line):
            if (m := _SUBJECT.match(line)) and m.group(1) not in self.failed_subjects:
                self.failed_subjects.append(m.group(1))
            self._say(line)
        elif _SHOW.match(line):
            self._say(line)
        elif line.startswith("total") and self.total == 0:  # the Job stats table's last row
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                self.total = int(parts[1])

    @staticmethod
    def _describe(rule: str, wildcards: str) -> str:
        """'reho sub-001' from rule reho, wildcards scan=sub-001/func/sub-001_task-rest."""
        sub = re.search(r"(sub-[A-Za-z0-9]+)", wildcards)
        batch = re.search(r"batch=(\w+)", wildcards)
        return f"{rule} {sub.group(1) if sub else ('batch ' + batch.group(1) if batch else wildcards)}"

    # --- output ------------------------------------------------------------------------------
    def status_line(self, final: bool = False) -> str:
        """'rviflow: 12/40 jobs done (30%) · 1 failed subject (sub-002) · 0:35 elapsed · ~1:20 left'
        (``final``: without the 'rviflow: ' prefix, the remaining time and the last job)."""
        elapsed = self.clock() - self.start
        pct = f" ({100 * self.done // self.total}%)" if self.total else ""
        parts = [f"{self.done}/{self.total or '?'} jobs done{pct}"]
        if self.failed_subjects:
            shown = ", ".join(self.failed_subjects[:3]) + (" ..." if len(self.failed_subjects) > 3 else "")
            parts.append(f"{len(self.failed_subjects)} failed subject{'s' if len(self.failed_subjects) > 1 else ''}"
                         f" ({shown})")
        if self.failed_jobs:
            parts.append(f"{len(self.failed_jobs)} failed job{'s' if len(self.failed_jobs) > 1 else ''}")
        parts.append(f"{_clock(elapsed)} elapsed")
        if self.done and self.total > self.done and not final:
            parts.append(f"~{_clock(elapsed / self.done * (self.total - self.done))} left")
        if final:
            return " · ".join(parts)
        last = getattr(self, "_last", "")
        return "rviflow: " + " · ".join(parts) + (f" · last: {last}" if last and not self.tty else "")

    def _status(self) -> None:
        text = self.status_line()
        if self.tty:
            self.console.write("\r\033[K" + text)
            self._status_shown = True
        else:
            self.console.write(text + "\n")
        self.console.flush()

    def _say(self, line: str) -> None:
        """A message above the status line."""
        if self.tty and self._status_shown:
            self.console.write("\r\033[K")
        self.console.write(line + "\n")
        if self.tty and self._status_shown:
            self.console.write(self.status_line())
        self.console.flush()

    def close(self) -> None:
        if self.tty and self._status_shown:
            self.console.write("\n")
            self.console.flush()
        self._log.close()


def log_file(output_dir: str | Path) -> Path:
    """Where a run's full Snakemake log goes: <output_dir>/logs/rviflow_run-<UTC time>.log."""
    return Path(output_dir) / "logs" / f"rviflow_run-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.log"


def follow(proc, progress: Progress) -> int:
    """Feed ``proc``'s merged stdout/stderr (text, line-buffered) to ``progress`` until it ends;
    its exit code. Ctrl-C reaches snakemake too (same process group): keep reading until it stops."""
    while True:
        try:
            for line in proc.stdout:
                progress.feed(line)
            return proc.wait()
        except KeyboardInterrupt:
            continue
