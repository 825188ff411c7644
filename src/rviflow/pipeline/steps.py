"""Running one per-subject step: a nipype node, with bad input recorded instead of lost.

A per-subject step either succeeds (outputs + JSON sidecar with ``"status": "ok"``) or, on an
:class:`~rviflow.errors.InputError`, prints one line naming the subject, the step and the
problem. With ``on_error="exclude"`` (the default) it then writes a sidecar with
``"status": "failed"`` and the reason, and leaves its other outputs as 0-byte placeholders so
that the remaining subjects and the cohort stage still run; downstream steps see the failed
sidecar and pass the failure on without reading the placeholders. With ``on_error="fail"``
the job fails as usual. A disk-full or permission error is not the subject's fault: the job
fails (whatever ``on_error``) with one line naming the subject, the file and the OS error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Callable

from rviflow.io.bids import read_json, write_json
from rviflow.errors import InputError, OutputError
from rviflow.pipeline.runner import tell

os.environ.setdefault("NIPYPE_NO_ET", "1")
_INPUT_ERROR_RE = re.compile(r"rviflow\.errors\.InputError: (.*)$", re.MULTILINE)
#: an OS error as a traceback shows it: rviflow's OutputError line, else e.g.
#: "OSError: [Errno 28] No space left on device: '/path'"
_OUTPUT_ERROR_RE = re.compile(r"rviflow\.errors\.OutputError: (.*)$", re.MULTILINE)
_OS_ERROR_RE = re.compile(r"^\w*Error: \[Errno (\d+)\] ([^\n]*?): '([^'\n]*)'$", re.MULTILINE)


def run_node(interface, name: str, work_dir: str | Path, **inputs) -> None:
    """Run a nipype interface as a Node whose working directory (provenance) is ``work_dir``.

    Snakemake decides what needs to run, so nipype's own result cache is bypassed
    (``overwrite=True``): a stale cache must never stand in for a re-run.
    """
    from nipype import Node, config, logging as nlogging

    config.set("execution", "remove_unnecessary_outputs", "false")
    config.set("monitoring", "enabled", "false")
    for logger in ("nipype.workflow", "nipype.interface"):  # our one-line message says it
        nlogging.getLogger(logger).setLevel(logging.CRITICAL)
    node = Node(interface, name=name, base_dir=str(work_dir))
    node.overwrite = True
    for key, value in inputs.items():
        setattr(node.inputs, key, value)
    try:
        node.run()
    except Exception as exc:
        # nipype re-raises interface errors as NodeExecutionError carrying only the traceback
        # text; recover our one-line InputError from it so the user sees that line.
        found = _INPUT_ERROR_RE.findall(str(exc))
        if found:
            raise InputError(found[-1].strip()) from None
        raise


def upstream_failure(sidecars: list[str | Path]) -> dict | None:
    """The first failed status record among upstream sidecars, if any."""
    for side in sidecars:
        if Path(side).exists() and Path(side).stat().st_size:
            rec = read_json(side)
            if rec.get("status") == "failed":
                return rec
    return None


def record_failure(outputs: list[str | Path], sidecar: str | Path, record: dict) -> None:
    """Write the failed-status sidecar and 0-byte placeholders for the other outputs."""
    for out in outputs:
        if str(out) != str(sidecar):
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_bytes(b"")
    write_json(sidecar, {**record, "status": "failed"})


def run_subject_step(
    step: str, participant_id: str, func: Callable[[], None], outputs: list[str], sidecar: str,
    upstream: list[str] = (), on_error: str = "exclude", log: str | None = None,
) -> bool:
    """Run ``func`` for one subject's step; returns True when it produced real outputs.

    A failing job's one line also goes to its ``log`` (where SLURM users look first)."""
    prior = upstream_failure(list(upstream))
    if prior is not None:
        record_failure(outputs, sidecar, {**prior, "participant_id": participant_id})
        return False
    try:
        func()
    except Exception as exc:  # nipype may wrap our InputError; find it in the chain
        err = _find_input_error(exc)
        if err is None:
            fault = os_fault(exc)
            if fault is None:
                raise
            # disk full, no permission, ...: not the subject's data, so the job fails (on_error
            # does not apply) with one line; atomic writes left nothing under the final name
            line = f"rviflow {step}: {participant_id}: {fault}"
            with contextlib.suppress(OSError):  # the log may be on the full disk too
                _log(log, line)
            raise SystemExit(line) from None
        message = str(err)
        if not message.startswith(participant_id):
            message = f"{participant_id}: {message}"
        tell(f"rviflow {step}: {message}")
        if on_error == "fail":
            _log(log, f"rviflow {step}: {message}")
            raise SystemExit(f"rviflow {step}: {message}") from None
        record_failure(outputs, sidecar, dict(participant_id=participant_id, step=step, reason=message))
        return False
    return True


def os_fault(exc: BaseException) -> str | None:
    """One line for a disk-full, quota, permission or I/O error in ``exc``'s chain or, as nipype
    wraps errors, in its text: "cannot write FILE: No space left on device (ENOSPC)"; None for
    any other error (a bug keeps its traceback)."""
    import errno

    faults = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO}
    for err in _chain(exc):
        if isinstance(err, OutputError):
            return str(err)
        if isinstance(err, OSError) and err.errno in faults:
            return f"{err.filename}: {err.strerror} ({errno.errorcode[err.errno]})"
    found = _OUTPUT_ERROR_RE.findall(str(exc))
    if found:
        return found[-1].strip()
    found = [f for f in _OS_ERROR_RE.findall(str(exc)) if int(f[0]) in faults]
    if found:
        code, strerror, path = found[-1]
        return f"{path}: {strerror} ({errno.errorcode[int(code)]})"
    return None


def _chain(exc: BaseException | None):
    """``exc`` and the exceptions it was raised from or while handling."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        yield exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__


def _find_input_error(exc: BaseException) -> InputError | None:
    return next((e for e in _chain(exc) if isinstance(e, InputError)), None)


def _log(log: str | None, message: str) -> None:
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(message + "\n")


def denoise_step(bold: str, mask: str, out_bold: str, out_json: str, work_dir: str, participant_id: str,
                 options: dict, on_error: str, log: str | None = None) -> bool:
    """Per-scan denoising through the :class:`~rviflow.pipeline.interfaces.DenoiseBold` node."""
    from rviflow.pipeline.interfaces import DenoiseBold

    def go():
        from threadpoolctl import threadpool_limits

        # one BLAS thread, as the rule declares: a batch job's threads must not change the
        # regression's rounding (batch mode writes exactly what per-scan mode writes)
        with threadpool_limits(1):
            run_node(DenoiseBold(), "denoise", work_dir, bold_file=bold, mask_file=mask, out_file=out_bold,
                     **options)

    ok = run_subject_step("denoise", participant_id, go, [out_bold, out_json], out_json, [], on_error, log)
    _log(log, f"denoise {participant_id}: {'ok' if ok else read_json(out_json)['reason']}")
    return ok


def reho_step(bold: str, bold_json: str, mask: str, outputs: dict[str, str], work_dir: str, participant_id: str,
              options: dict, on_error: str, log: str | None = None, threads: int = 1) -> bool:
    """Per-scan ReHo through the :class:`~rviflow.pipeline.interfaces.ComputeReHo` node, on ``threads``
    threads (the rule's ``threads:``).

    ``outputs`` has keys reho, mreho, zreho, mask, json.
    """
    from rviflow.pipeline.interfaces import ComputeReHo

    def go():
        run_node(ComputeReHo(), "reho", work_dir, in_file=bold, mask_file=mask, out_reho=outputs["reho"],
                 out_mreho=outputs["mreho"], out_zreho=outputs["zreho"], out_mask=outputs["mask"], threads=int(threads), **options)

    ok = run_subject_step("reho", participant_id, go, list(outputs.values()), outputs["json"], [bold_json], on_error,
                          log)
    _log(log, f"reho {participant_id}: {'ok' if ok else read_json(outputs['json'])['reason']}")
    return ok


def parcellate_step(in_map: str, in_json: str, valid_mask: str, atlas_image: str, atlas_labels: str, measure: str,
                    out_tsv: str, out_json: str, work_dir: str, participant_id: str, session: str,
                    on_error: str, log: str | None = None, brain_mask: str | None = None, *,
                    min_coverage: float, min_regions: float) -> bool:
    """Per-scan parcellation through the :class:`~rviflow.pipeline.interfaces.ParcellateMap` node.

    A region whose covered fraction (voxels in ``valid_mask`` ÷ its brain voxels with
    ``brain_mask`` (CBF), else its atlas voxels) is below ``min_coverage`` is n/a; a map with
    data in fewer than ``min_regions`` of the atlas regions is refused (BOLD; config
    ``atlas.min_regions`` / ``atlas.min_coverage``, CBF: ``cbf.min_coverage``). The covered
    fractions go into the JSON.
    """
    from rviflow.pipeline.interfaces import ParcellateMap

    def go():
        extra = dict(brain_mask=brain_mask) if brain_mask else {}
        run_node(ParcellateMap(), f"parcellate_{measure}", work_dir, in_file=in_map, valid_mask=valid_mask,
                 atlas_image=atlas_image, atlas_labels=atlas_labels, measure=measure,
                 participant_id=participant_id, session=session or "", out_file=out_tsv,
                 min_coverage=float(min_coverage), min_regions=float(min_regions), **extra)

    ok = run_subject_step("parcellate", participant_id, go, [out_tsv, out_json], out_json, [in_json], on_error, log)
    _log(log, f"parcellate {participant_id}: {'ok' if ok else read_json(out_json)['reason']}")
    return ok


def cbf_step(source_file: str, outputs: dict[str, str], reference_mask: str, atlas_image: str, work_dir: str,
             participant_id: str, *, source: str, options: dict, in_template: bool, reference: str, on_error: str,
             t1w: str | None = None, template_xfm: str | None = None, reference_mask_file: str | None = None,
             log: str | None = None) -> bool:
    """Per-series CBF through the :class:`~rviflow.pipeline.interfaces.QuantifyCBF` node.

    ``outputs`` has keys cbf, rel, mask, json and optionally att (written for multi-PLD ASL).
    """
    from rviflow.pipeline.interfaces import QuantifyCBF

    def go():
        extra = {k: v for k, v in dict(t1w=t1w, template_xfm=template_xfm, reference_mask_file=reference_mask_file,
                                       out_att=outputs.get("att")).items() if v}
        run_node(QuantifyCBF(), "cbf", work_dir, in_file=source_file, source=source, reference_mask=reference_mask,
                 atlas_image=atlas_image, participant_id=participant_id, in_template=in_template,
                 options=dict(options), reference=reference, out_cbf=outputs["cbf"], out_rel=outputs["rel"],
                 out_mask=outputs["mask"], **extra)

    declared = [outputs[k] for k in ("cbf", "rel", "mask", "json")]
    ok = run_subject_step("cbf", participant_id, go, declared, outputs["json"], [], on_error, log)
    _log(log, f"cbf {participant_id}: {'ok' if ok else read_json(outputs['json'])['reason']}")
    return ok


def measure_step(measure: str, bold: str, bold_json: str, mask: str, outputs: dict[str, str], work_dir: str,
                 participant_id: str, options: dict, on_error: str, threads: int = 1,
                 log: str | None = None) -> bool:
    """Per-scan maps of any registered measure (rviflow.measures.registry) through the
    :class:`~rviflow.pipeline.interfaces.ComputeMeasure` node; ``outputs`` has the spec's output keys."""
    from rviflow.pipeline.interfaces import ComputeMeasure

    def go():
        run_node(ComputeMeasure(), measure, work_dir, measure=measure, in_file=bold, mask_file=mask,
                 outputs=dict(outputs), options=dict(options), threads=int(threads))

    ok = run_subject_step(measure, participant_id, go, list(outputs.values()), outputs["json"], [bold_json], on_error,
                          log)
    _log(log, f"{measure} {participant_id}: {'ok' if ok else read_json(outputs['json'])['reason']}")
    return ok
