# rviflow: ReHo / CBF regional vulnerability in depression. Entry point only: config,
# validation, includes and the final targets (listed by rviflow_targets() in common.smk).
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# rviflow for the rules' own Python. Jobs (script: files, also in conda envs, where Snakemake
# blocks PYTHONPATH) import it through scripts/rviflow, a link to src/rviflow: Snakemake puts
# a script's folder on its sys.path.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

validate(config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"))


include: "workflow/rules/common.smk"


if IMAGING:  # fmriprep_dir given; else the cohort stage runs on regional tables alone

    include: "workflow/rules/reho.smk"
    include: "workflow/rules/cbf_inputs.smk"
    include: "workflow/rules/measures.smk"
    include: "workflow/rules/cbf.smk"
    include: "workflow/rules/batch.smk"


include: "workflow/rules/cohort_inputs.smk"
include: "workflow/rules/design_inputs.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/designs.smk"
include: "workflow/rules/transcriptomics.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rviflow_targets(),
    default_target: True
