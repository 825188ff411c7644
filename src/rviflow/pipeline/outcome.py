"""Outcome of a cohort rule and of the whole run: a failed cohort step never loses qc.tsv or the report.

A cohort rule (harmonize, effect sizes, RVI, prediction, ...) that cannot run on this cohort
(too few subjects per site or fold, a constant region, a bug) writes each of its outputs as a
*failure marker*: a two-line TSV ``rviflow_status<TAB>reason`` / ``failed<TAB><one line>``. Rules
downstream of a marker write markers of their own ("not run: ..."), the report shows the
reason in the failing section, and the run still ends with qc.tsv and the report. The reason
names the config key that turns the analysis off when there is one (:data:`SKIP_KEYS`).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from pathlib import Path

from rviflow.errors import OutputError

MARKER_HEADER = "rviflow_status\treason"
#: rule -> the config key that turns its analysis off
SKIP_KEYS = {
    "harmonize": "cohort.harmonize: false",
    "rvi": "cohort.rvi.enabled: false",
    "prediction": "cohort.prediction.enabled: false",
    "colocalisation": "cohort.colocalisation.enabled: false",
    "effect_summaries": "cohort.structural: [] or cohort.functional: []",
    "response_prediction": "design.prediction.enabled: false",
    "associations": "associations: []",
    "gene_association": "transcriptomics.enabled: false",
    "gene_set_enrichment": "transcriptomics.collections: []",
}


def failure_of(path: str | Path) -> str | None:
    """The reason written in a failure marker, or None (any other file, or none)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="ignore")
    except OSError:
        return None
    lines = head.splitlines()
    if len(lines) >= 2 and lines[0] == MARKER_HEADER:
        return lines[1].split("\t", 1)[1] if "\t" in lines[1] else lines[1]
    return None


def write_failure(outputs, reason: str) -> None:
    """Each output becomes a failure marker holding ``reason`` (one line)."""
    from rviflow.io.bids import atomic_path

    reason = " ".join(str(reason).split())
    for out in outputs:
        with atomic_path(out) as tmp:
            Path(tmp).write_text(f"{MARKER_HEADER}\nfailed\t{reason}\n")


def _flat(files) -> list[str]:
    out = []
    for f in files:
        out.extend(_flat(f) if isinstance(f, (list, tuple)) else [str(f)])
    return out


@contextlib.contextmanager
def cohort_rule(rule: str, inputs, outputs):
    """Run a cohort rule's body; a failure (or a failed input) becomes failure markers.

    Yields True when the body should run, False when an input is a failure marker (the outputs
    are then markers saying so): ``with cohort_rule(...) as go: if go: ...``. Disk-full and
    permission errors still fail the job (not the cohort's fault). The reason goes to stderr
    (the rule's log under :func:`rviflow.pipeline.runner.run_cohort`) and to the terminal.
    """
    outputs = _flat(outputs)
    failed_in = next(((p, r) for p in _flat(inputs) if (r := failure_of(p))), None)
    if failed_in:
        reason = f"not run: {Path(failed_in[0]).name} failed ({failed_in[1]})"
        write_failure(outputs, reason)
        _say(rule, reason)
        yield False
        return
    try:
        yield True
    except OutputError:
        raise
    except Exception as exc:  # noqa: BLE001 (every failure of a cohort step is reported the same way)
        from rviflow.pipeline.steps import os_fault

        if os_fault(exc):
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if exc.__class__.__name__ != "InputError":
            reason = f"{type(exc).__name__}: {reason}"
        if rule in SKIP_KEYS:
            reason += f" (to skip this analysis set {SKIP_KEYS[rule]})"
        write_failure(outputs, reason)
        _say(rule, reason, traceback.format_exc())


def _say(rule: str, reason: str, details: str = "") -> None:
    from rviflow.pipeline.runner import tell

    if details:
        print(details, file=sys.stderr, end="")
    tell(f"rviflow {rule}: {reason}")


def run_summary(qc_tsv: str | Path, report: str | Path, failed: dict[str, str]) -> str:
    """The end-of-run line: subjects included / excluded (from qc.tsv), failed cohort steps, the
    report's path."""
    import pandas as pd

    parts = []
    try:
        qc = pd.read_csv(qc_tsv, sep="\t", dtype=str, keep_default_na=False)
        inc = set(qc.loc[qc["step"].str.startswith("cohort_") & (qc["status"] == "ok"), "participant_id"])
        exc = {p for p in qc["participant_id"] if p.startswith("sub-")} - inc  # not the 'cohort' rows
        parts.append(f"{len(inc)} subjects included, {len(exc)} excluded (reasons: {qc_tsv})")
    except (OSError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError):
        parts.append(f"no QC table ({qc_tsv})")
    if failed:
        parts.append("failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    parts.append(f"report: {report}" if Path(report).exists() else f"no report ({report} was not written)")
    return "rviflow: " + "; ".join(parts)
