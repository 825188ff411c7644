# Imaging transcriptomics (config `transcriptomics:`): AHBA expression per atlas region (abagen or a
# ready table), gene-map correlations against spatial null maps + PLS, and gene-set enrichment with
# local GMTs. Targets: transcriptomics_targets() in common.smk.
# Inputs that are missing are reported at parse time, naming the config key to set.
import json

from snakemake.settings.types import DeploymentMethod

from rviflow.io.resources import abagen_python, transcriptomics_inputs

TX = config["transcriptomics"]
TX_DIR = group_path("transcriptomics")

if TX["enabled"]:
    TX_USE_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    try:
        TX_SOURCE, TX_GMT = transcriptomics_inputs(TX)
        TX_PYTHON = abagen_python(TX, workflow.basedir, TX_USE_CONDA) if TX["backend"] == "abagen" else ""
    except InputError as exc:
        raise WorkflowError(f"rviflow: {exc}") from None
    for _map in TX["maps"]:  # maps must come from this run (MEASURES is complete: cohort.smk came first)
        if design_map_file(_map):  # change_<m> / assoc_<m>_<variable> (design_inputs.smk)
            continue
        _measure = _map.removeprefix("rvi_")
        if _measure not in MEASURES or (_map.startswith("rvi_") and not config["cohort"]["rvi"]["enabled"]):
            raise WorkflowError(f"rviflow: transcriptomics.maps: {_map!r} is not produced by this run; measures: "
                                f"{', '.join(MEASURES)} (their d maps), rvi_<measure> with cohort.rvi.enabled, "
                                "change_<measure> (design longitudinal) or assoc_<measure>_<variable> (associations)")
    TX_EXPRESSION = os.path.join(TX_DIR, "expression.tsv")

    if TX["backend"] == "abagen":

        rule expression_abagen:
            input:
                atlas_image=ATLAS_IMAGE,
                atlas_labels=ATLAS_LABELS,
            output:
                TX_EXPRESSION,
            params:
                python=TX_PYTHON,
                script=os.path.join(workflow.basedir, "scripts", "abagen_expression.py"),
                ahba_dir=TX["ahba_dir"],
                options=json.dumps(TX["abagen"]),
            log:
                os.path.join(OUT, "logs", "expression_abagen.log"),
            resources:
                mem_mb=8000,
                runtime=60,
            conda:
                os.path.join(ENVS, "abagen.yaml")
            shell:
                "{params.python} {params.script} {input.atlas_image:q} {input.atlas_labels:q} {params.ahba_dir:q} "
                "{params.options:q} {output:q} > {log:q} 2>&1"

    else:

        rule expression_table:
            input:
                table=TX_SOURCE,
                atlas_labels=ATLAS_LABELS,
            output:
                TX_EXPRESSION,
            log:
                os.path.join(OUT, "logs", "expression_table.log"),
            resources:
                mem_mb=2000,
                runtime=10,
            conda:
                os.path.join(ENVS, "transcriptomics.yaml")
            script:
                "../../scripts/expression_table.py"

    rule gene_association:
        input:
            expression=TX_EXPRESSION,
            # a measure's d map, or rvi_<measure>: its RVI expected pattern
            map=lambda w: design_map_file(w.map) or group_path(
                f"expected_pattern_{w.map[4:]}.tsv" if w.map.startswith("rvi_") else "effect_sizes.tsv"
            ),
            atlas_image=ATLAS_IMAGE,
            atlas_labels=ATLAS_LABELS,
        output:
            genes=os.path.join(TX_DIR, "{map}_genes.tsv"),
            pls=os.path.join(TX_DIR, "{map}_pls.tsv"),
            null_maps=os.path.join(TX_DIR, "{map}_null_maps.tsv"),
        wildcard_constraints:
            map="[A-Za-z0-9_]+",  # the schema's transcriptomics.maps pattern
        params:
            cortex_only=TX["cortex_only"],
            left_only=TX["left_only"],
            null_method=TX["null_method"],
            n_nulls=TX["n_nulls"],
            pls_components=TX["pls_components"],
            n_boot=TX["n_boot"],
            seed=TX["seed"],
        log:
            os.path.join(OUT, "logs", "gene_association_{map}.log"),
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            os.path.join(ENVS, "transcriptomics.yaml")
        script:
            "../../scripts/transcriptomics.py"

    rule gene_set_enrichment:
        input:
            genes=os.path.join(TX_DIR, "{map}_genes.tsv"),
            expression=TX_EXPRESSION,
            null_maps=os.path.join(TX_DIR, "{map}_null_maps.tsv"),  # ensemble null: the same null maps
            gmt=lambda w: TX_GMT[w.collection],
        output:
            table=os.path.join(TX_DIR, "{map}_enrichment_{collection}.tsv"),
            nulls=os.path.join(TX_DIR, "{map}_enrichment_{collection}_nulls.tsv"),
        wildcard_constraints:
            map="[A-Za-z0-9_]+",  # the schema's transcriptomics.maps pattern
            collection="[A-Za-z0-9_.-]+",
        params:
            rank_by=TX["rank_by"],
            direction=TX["direction"],
            n_perm=TX["n_perm"],
            seed=TX["seed"],
            min_size=TX["min_size"],
            # the themes are broad unions of GO terms by design: no upper size limit
            max_size=lambda w: 10**6 if w.collection == "rviflow_themes" else TX["max_size"],
            n_top=TX["n_top"],
            config_key=lambda w: f"transcriptomics.gene_sets.{w.collection}",
        threads: 2
        log:
            os.path.join(OUT, "logs", "gene_set_enrichment_{map}_{collection}.log"),
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            os.path.join(ENVS, "transcriptomics.yaml")
        script:
            "../../scripts/enrichment.py"

