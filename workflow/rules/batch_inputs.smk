# Batch mode: each scan's chain as rviflow.pipeline.batches.run_batch steps, built from the per-scan
# rules' declared outputs so that both modes write the same files (rules in batch.smk).


def _scan_file(pattern, key, wildcard="scan"):
    return str(pattern).replace("{%s}" % wildcard, key)


def cbf_batch_mb(wildcards):
    """Sizes (MB) of a CBF batch's ASL series / perfusion maps."""
    return [file_mb(CBF_INPUTS[k].source_file) for k in CBF_BATCHES[wildcards.batch]]


def cbf_chain(key):
    """One ASL series' CBF -> parcellation of each analysed CBF measure, as run_batch steps."""
    p, f = CBF_INPUTS[key], lambda pat: _scan_file(pat, key, "aslscan")
    out = rules.cbf.output
    common = dict(participant_id=p.participant_id, on_error=config["on_subject_error"])
    outputs = {k: f(out[k]) for k in ("cbf", "rel", "mask", "json")} | {"att": cbf_path("kinetic", "att", ".nii.gz", key)}
    steps = [dict(step="cbf", kwargs=dict(
        source_file=p.source_file, outputs=outputs, reference_mask=p.reference, atlas_image=ATLAS_IMAGE,
        work_dir=work_dir("cbf", key), source=CBF["source"], options=CBF_OPTIONS, in_template=p.in_template,
        t1w=p.t1w or None, template_xfm=p.xfm or None, reference=CBF["reference"],
        reference_mask_file=CBF["reference_mask"] or None, log=log_path("cbf", key), **common))]
    for m in CBF_ANALYSED:
        parc = getattr(rules, f"parcellate_{m}")
        steps.append(dict(step="parcellate", kwargs=dict(
            in_map=f(parc.input.map), in_json=outputs["json"], valid_mask=outputs["mask"],
            atlas_image=ATLAS_IMAGE, atlas_labels=ATLAS_LABELS, measure=m, out_tsv=f(parc.output.tsv),
            out_json=f(parc.output.json), work_dir=work_dir("parcellate", key), session=p.session or "",
            log=log_path(f"parcellate_{m}", key), brain_mask=p.reference, min_coverage=CBF["min_coverage"],
            min_regions=config["atlas"]["min_regions"],
            **common)))
    return dict(key=key, participant_id=p.participant_id, steps=steps)
