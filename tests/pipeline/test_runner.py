"""rviflow.pipeline.runner: a script's stdout, stderr, warnings and errors go into the rule's log."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from rviflow.pipeline.runner import logged, resolve, run


class _Smk:
    def __init__(self, log):
        self.log = [str(log)] if log else []
        self.rule = "demo"


def _noisy(value, *, scale=1):
    import warnings

    print("to stdout")
    os.write(2, b"to fd 2 (as C code writes)\n")
    warnings.warn("a warning from the step", UserWarning)
    return value * scale


def _fails():
    print("before the error")
    raise ValueError("sub-07: the bold is 3-D")


def test_output_warnings_and_return_value_go_through(tmp_path):
    log = tmp_path / "logs" / "step.log"
    assert run(_Smk(log), _noisy, value=2, scale=3) == 6
    text = log.read_text()
    for line in ("rviflow: rule demo: _noisy", "to stdout", "to fd 2 (as C code writes)", "a warning from the step"):
        assert line in text


def test_a_failing_step_leaves_its_error_in_the_log(tmp_path):
    log = tmp_path / "step.log"
    with pytest.raises(ValueError, match="3-D"):
        run(_Smk(log), _fails)
    text = log.read_text()
    assert "before the error" in text and "ValueError: sub-07: the bold is 3-D" in text and "Traceback" in text


def test_descriptors_are_restored_and_no_log_means_untouched(tmp_path, capfd):
    with logged(tmp_path / "a.log"):
        print("inside")
    print("outside")
    assert "outside" in capfd.readouterr().out
    assert "outside" not in (tmp_path / "a.log").read_text()
    assert run(_Smk(None), _noisy, value=1) == 1  # a rule without log: nothing redirected


def test_a_user_line_reaches_the_terminal_and_the_log(tmp_path, capfd):
    from rviflow.pipeline.runner import tell

    with logged(tmp_path / "a.log"):
        tell("rviflow denoise: sub-04: BOLD has 3 dimensions")
    assert "sub-04: BOLD has 3 dimensions" in capfd.readouterr().err
    assert "sub-04: BOLD has 3 dimensions" in (tmp_path / "a.log").read_text()


def test_resolve_reference():
    assert resolve("os.path:join") is os.path.join and resolve(len) is len


def test_in_a_subprocess_the_error_reaches_both_the_log_and_stderr(tmp_path):
    """As a Snakemake script runs: its own process; the traceback goes to the log and to the
    job's stderr (Snakemake's stream)."""
    code = textwrap.dedent(f"""
        from rviflow.pipeline.runner import run
        class S: log = [{str(tmp_path / 'x.log')!r}]; rule = "x"
        def bad(): raise RuntimeError("boom")
        run(S(), bad)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "RuntimeError: boom" in proc.stderr
    assert "RuntimeError: boom" in (tmp_path / "x.log").read_text()
