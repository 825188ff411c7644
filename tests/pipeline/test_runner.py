"""rviflow.pipeline.runner: a script's stdout, stderr, warnings and errors go into the rule's log."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from rviflow.pipeline.outcome import failure_of, write_failure
from rviflow.pipeline.runner import logged, resolve, run, run_cohort


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


class _CohortSmk(_Smk):
    def __init__(self, log, inputs, outputs, rule="gene_association"):
        super().__init__(log)
        self.rule, self.input, self.output = rule, [str(p) for p in inputs], [str(p) for p in outputs]


def test_run_cohort_turns_a_failure_into_markers_with_the_reason_in_the_log(tmp_path):
    """A cohort step failing on this cohort writes failure markers (the run goes on, the report says
    why) naming the key that turns it off; its traceback is in the log."""
    outs = [tmp_path / "genes.tsv", tmp_path / "pls.tsv"]
    log = tmp_path / "step.log"
    assert run_cohort(_CohortSmk(log, [], outs), _fails) is None
    assert all(failure_of(o).startswith("ValueError: sub-07: the bold is 3-D") for o in outs)
    assert "transcriptomics.enabled: false" in failure_of(outs[0])
    text = log.read_text()
    assert text.startswith("rviflow: rule gene_association: _fails") and "Traceback" in text


def test_run_cohort_passes_on_a_failed_input_without_running(tmp_path):
    """Effect sizes failed: gene_association does not read the marker as a table (it crashed with a
    KeyError before); its outputs say it did not run and why."""
    upstream = tmp_path / "effect_sizes.tsv"
    write_failure([upstream], "reho: no subject with data is left")
    outs = [tmp_path / "reho_genes.tsv"]
    ran = []
    run_cohort(_CohortSmk(tmp_path / "log", [upstream], outs), lambda: ran.append(1))
    assert not ran
    assert failure_of(outs[0]) == "not run: effect_sizes.tsv failed (reho: no subject with data is left)"
