# The run's report: one self-contained HTML page (rviflow.report) from every target of the run
# (rviflow_targets(), evaluated when the DAG is built, so stages included later count too) plus
# the per-scan ReHo maps it shows. Sections whose inputs a run lacks say so; it never fails.
import time

REPORT_HTML = os.path.join(OUT, "report", "rviflow_report.html")


rule report:
    input:
        targets=lambda w: [t for t in rviflow_targets() if t != REPORT_HTML],
        **per_scan_inputs("reho", REHO_BATCHES, reho_maps=per_scan("reho", "bold", ".nii.gz")),
        participants=PARTICIPANTS_TSV,
        atlas_image=ATLAS_IMAGE,
        atlas_labels=ATLAS_LABELS,
    output:
        html=report(REPORT_HTML, caption="../report/rviflow_report.rst", category="Report"),
    params:
        config=config,
    log:
        os.path.join(OUT, "logs", "report.log"),
    resources:
        mem_mb=cohort_mem_mb(3000, 1),
        runtime=cohort_runtime(15, 0.02),
    conda:
        os.path.join(ENVS, "report.yaml")
    script:
        "../../scripts/report.py"


RUN_START = time.time()


def finish_run(ok):
    """End of every run (success or error): qc.tsv and the report exist (written here from what the
    run produced if a failure kept their rules from running), then one summary line."""
    from rviflow.cohort import write_qc_table
    from rviflow.outcome import failure_of, run_summary
    from rviflow.report import build_report

    qc = group_path("qc.tsv")

    def stale(path):  # not written by this run (its rule did not get to run)
        return not os.path.exists(path) or os.path.getmtime(path) < RUN_START

    if not ok:
        try:
            if stale(qc):
                steps = [group_path(f"qc/steps_{m}.tsv") for m in MEASURES] + [group_path("qc/cohort.tsv")]
                write_qc_table(list(DISCOVERY_QC), [s for s in steps if os.path.exists(s)], qc)
            if stale(REPORT_HTML):
                build_report(OUT, dict(config), REPORT_HTML,
                             PARTICIPANTS_TSV if os.path.exists(PARTICIPANTS_TSV) else PARTICIPANTS_RAW,
                             ATLAS_IMAGE, ATLAS_LABELS, log=os.path.join(OUT, "logs", "report.log"))
        except Exception as exc:  # the summary line below still says what exists
            print(f"rviflow: could not write qc.tsv / the report after the failure: {exc}", file=sys.stderr)
    failed = {os.path.relpath(t, OUT): r for t in rviflow_targets() if os.path.exists(t) and (r := failure_of(t))}
    print(run_summary(qc, REPORT_HTML, failed), file=sys.stderr)


onsuccess:
    finish_run(True)


onerror:
    finish_run(False)
