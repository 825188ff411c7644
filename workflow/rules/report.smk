# The run's report: one self-contained HTML page (rviflow.report.document) from every target of the run
# (rviflow_targets(), evaluated when the DAG is built, so stages included later count too) plus
# the per-scan ReHo maps it shows. Sections whose inputs a run lacks say so; it never fails.
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


# every run ends with qc.tsv, the report and one summary line (finish_run, common.smk)
onsuccess:
    finish_run(True)


onerror:
    finish_run(False)
