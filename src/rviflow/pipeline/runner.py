"""The one way a Snakemake script runs its function: keyword arguments, output into the rule's log.

Every ``scripts/*.py`` is one call::

    from rviflow.pipeline.runner import run
    run(snakemake, "rviflow.pipeline.steps:reho_step", bold=snakemake.input.bold, ...)

(:func:`run_cohort` for cohort rules, whose failures become failure markers instead of failing the run.)

:func:`run` opens the rule's ``log:`` first (before the function's module is imported, so
import-time warnings land there too), sends the process's stdout and stderr into it at the file
descriptor level (so output of C libraries and nipype's loggers is kept as well), routes Python
warnings through it, and on an exception writes the traceback into the log before the job fails.
Snakemake runs each ``script:`` in its own Python process, so redirecting its descriptors
touches nothing else.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable


#: the process's stderr before :func:`logged` redirected it (the terminal / Snakemake's stream)
_TERMINAL: list[int] = []


def tell(line: str) -> None:
    """A one-line message for the user: into the log (current stderr) and, when a rule's log
    holds stderr, to the terminal as well (a bad subject's line must be seen where it runs)."""
    print(line, file=sys.stderr, flush=True)
    if _TERMINAL:
        os.write(_TERMINAL[-1], (line + "\n").encode())


def resolve(ref: str | Callable) -> Callable:
    """The function a "module:function" reference names (a callable is returned as is)."""
    if callable(ref):
        return ref
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


@contextlib.contextmanager
def logged(log: str | os.PathLike | None):
    """Send stdout, stderr (file descriptors 1 and 2), logging and warnings to ``log`` (appended).

    An exception raised inside is written to the log with its traceback, then re-raised after
    the descriptors are restored (so Snakemake's stream shows it as well).
    """
    if not log:
        yield
        return
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a", buffering=1) as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        os.dup2(fh.fileno(), 1)  # and below Python: C libraries and subprocesses write to fds 1 and 2
        os.dup2(fh.fileno(), 2)
        _TERMINAL.append(saved[1])
        handler = logging.StreamHandler(fh)
        logging.getLogger().addHandler(handler)
        logging.captureWarnings(True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")  # each distinct warning once, into the log
                yield
        except BaseException as exc:
            # SystemExit("rviflow <step>: ...") is a deliberate one-line failure the step has
            # already logged (disk full, on_subject_error: fail): no traceback for it
            if not (isinstance(exc, SystemExit) and (exc.code in (0, None) or isinstance(exc.code, str))):
                traceback.print_exc(file=sys.stderr)
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            _TERMINAL.pop()
            logging.captureWarnings(False)
            logging.getLogger().removeHandler(handler)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run(smk: Any, func: str | Callable, /, **kwargs) -> Any:
    """Call ``func(**kwargs)`` (a "module:function" reference or a callable) with everything it
    prints, warns or raises in the rule's first ``log:`` file; ``smk`` is the script's
    ``snakemake`` object. Returns what ``func`` returns."""
    with logged(_log_of(smk)):
        _announce(smk, func)
        return resolve(func)(**kwargs)


def run_cohort(smk: Any, func: str | Callable, /, **kwargs) -> Any:
    """:func:`run` for a cohort rule: when ``func`` fails on this cohort, or an input is a
    failure marker, every output becomes a failure marker saying why and the run goes on
    (:func:`rviflow.pipeline.outcome.cohort_rule`); the reason and traceback are in the log."""
    from rviflow.pipeline.outcome import cohort_rule

    with logged(_log_of(smk)):
        _announce(smk, func)
        with cohort_rule(smk.rule, smk.input, smk.output) as go:
            if go:
                return resolve(func)(**kwargs)
    return None


def _log_of(smk: Any) -> str | None:
    return smk.log[0] if len(smk.log) else None


def _announce(smk: Any, func: str | Callable) -> None:
    print(f"rviflow: rule {smk.rule}: {func if isinstance(func, str) else func.__name__}", flush=True)
