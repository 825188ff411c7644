# Batch mode: each scan's chain as rviflow.batches.run_batch steps, built from the per-scan
# rules' declared outputs so that both modes write the same files (rules in batch.smk).


def _scan_file(pattern, key, wildcard="scan"):
    return str(pattern).replace("{%s}" % wildcard, key)


def reho_batch_mb(wildcards):
    """Sizes (MB) of a ReHo batch's fMRIPrep BOLD files (its resources scale with them)."""
    return [file_mb(SCANS[k].bold) for k in REHO_BATCHES[wildcards.batch]]


def cbf_batch_mb(wildcards):
    """Sizes (MB) of a CBF batch's ASL series / perfusion maps."""
    return [file_mb(CBF_INPUTS[k].source_file) for k in CBF_BATCHES[wildcards.batch]]


def reho_chain(key):
    """One scan's denoise -> ReHo -> parcellation, as run_batch steps (kwargs of rviflow.steps)."""
    s, f = SCANS[key], lambda p: _scan_file(p, key)
    den, reho = rules.denoise.output, rules.reho.output
    common = dict(participant_id=s.participant_id, on_error=config["on_subject_error"])
    return dict(key=key, participant_id=s.participant_id, steps=[
        dict(step="denoise", kwargs=dict(bold=s.bold, mask=s.mask, out_bold=f(den.bold), out_json=f(den.json),
                                         work_dir=work_dir("denoise", key), options=DENOISE_OPTIONS,
                                         log=log_path("denoise", key), **common)),
        dict(step="reho", kwargs=dict(bold=f(den.bold), bold_json=f(den.json), mask=s.mask,
                                      outputs={k: f(reho[k]) for k in ("reho", "mreho", "zreho", "mask", "json")},
                                      work_dir=work_dir("reho", key), options=REHO_OPTIONS,
                                      log=log_path("reho", key), threads=REGISTRY["reho"].threads, **common)),
        dict(step="parcellate", kwargs=dict(
            in_map=f(rules.parcellate_reho.input.map), in_json=f(reho.json), valid_mask=f(reho.mask),
            atlas_image=ATLAS_IMAGE, atlas_labels=ATLAS_LABELS, measure="reho",
            out_tsv=f(rules.parcellate_reho.output.tsv), out_json=f(rules.parcellate_reho.output.json),
            work_dir=work_dir("parcellate", key), session=s.session or "", log=log_path("parcellate_reho", key),
            **common)),
    ])


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
            **common)))
    return dict(key=key, participant_id=p.participant_id, steps=steps)
