# rviflow: ReHo / CBF regional vulnerability in depression. Entry point only: config,
# validation, includes and the final targets (listed by rviflow_targets() in common.smk).
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

_SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, _SRC)  # rviflow for the rules' own Python
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p)  # and for jobs

validate(config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/reho.smk"
include: "workflow/rules/parcellate.smk"
include: "workflow/rules/cohort.smk"


rule all:
    input:
        rviflow_targets(),
    default_target: True
