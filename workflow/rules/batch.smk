# Batch mode (config batch_size > 0, see common.smk): one job runs the per-scan chain of many
# scans through rviflow.pipeline.batches.run_batch, calling the same step functions with the same file
# names as the per-scan rules (whose declared outputs name the files here). BOLD measures'
# batch rule (reho_batch: ReHo and every generated BOLD measure) is generated in measures.smk.
include: "batch_inputs.smk"


if CBF_INPUTS:

    rule cbf_batch:
        input:
            unpack(lambda w: dict(source=[CBF_INPUTS[k].source_file for k in CBF_BATCHES[w.batch]],
                                  reference=sorted({CBF_INPUTS[k].reference for k in CBF_BATCHES[w.batch]}),
                                  anat=[x for k in CBF_BATCHES[w.batch] for x in (CBF_INPUTS[k].t1w, CBF_INPUTS[k].xfm) if x])),
            atlas_image=ATLAS_IMAGE,
        output:
            batch_record("cbf"),
        params:
            plan=lambda w: [cbf_chain(k) for k in CBF_BATCHES[w.batch]],
            intermediates=[],
        log:
            os.path.join(OUT, "logs", "cbf_batch", "batch-{batch}.log"),
        resources:
            mem_mb=batch_mem_mb(2000, 10, cbf_batch_mb),
            runtime=batch_runtime(15, 0.2, cbf_batch_mb),
        conda:
            os.path.join(ENVS, "cbf.yaml")
        script:
            "../../scripts/batch.py"
