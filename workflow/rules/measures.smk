# Rules generated from the measure registry (rviflow.measures.GENERATED) for every measure whose
# config section says enabled: true. Per scan: the series it reads (rule regress: confounds
# regressed, not band-passed), its step (one rule per step, shared by a family such as alff /
# falff), parcellation of the chosen map; per cohort: collect_<m>; in batch mode: <step>_batch.
# A new measure needs no rule file: see CONTRIBUTING.md.
GEN_MEASURES = [s for s in GENERATED.values() if config.get(s.config_section, {}).get("enabled")]
GEN_STEPS = {s.step_name: s for s in reversed(GEN_MEASURES)}  # the family's first spec names its step
GEN_BATCHES = {step: batches_of(step, SCANS) for step in GEN_STEPS}
MEASURES.extend(s.name for s in GEN_MEASURES)
# the regressed series is band-pass free: ALFF-type measures need the whole spectrum
REGRESS_OPTIONS = {**DENOISE_OPTIONS, "high_pass": None, "low_pass": None}
for _s in GEN_MEASURES:
    if _s.series != "regressed":
        raise WorkflowError(f"rviflow: measure {_s.name}: series {_s.series!r} is not generated (only 'regressed')")


def gen_outputs(step, key="{scan}"):
    """{output key: path} of a generated step (the union over its family)."""
    outs = {}
    for s in GEN_MEASURES:
        if s.step_name == step:
            outs.update({k: out_path(o.desc, o.suffix, o.ext, scan=key) for k, o in s.outputs.items()})
    return outs


def gen_parcel_map(spec, key="{scan}"):
    """The map of ``spec`` that is parcellated (its config's *parcel_map choice)."""
    choice = config[spec.config_section][spec.parcel_map] if spec.parcel_choices else spec.parcel_map
    o = spec.outputs[choice]
    return out_path(o.desc, o.suffix, o.ext, scan=key)


def gen_files(spec):
    """The per-scan files collect_<m> reads: parcels + sidecars of the series and the step (the
    step's QC goes into the family's first measure's step table only, as for CBF)."""
    files = dict(tsv=per_scan(spec.name, "parcels", ".tsv"), json=per_scan(spec.name, "parcels", ".json"))
    if GEN_STEPS[spec.step_name] is spec:
        files["regress_json"] = per_scan("regressed", "bold", ".json")
        files[f"{spec.step_name}_json"] = [gen_outputs(spec.step_name, k)["json"] for k in sorted(SCANS)]
    return files


def gen_chain(step, key):
    """One scan's regress -> step -> parcellation of each family member, as run_batch steps."""
    s, spec = SCANS[key], GEN_STEPS[step]
    outs = gen_outputs(step, key)
    series = dict(bold=out_path("regressed", "bold", ".nii.gz", scan=key),
                  json=out_path("regressed", "bold", ".json", scan=key))
    common = dict(participant_id=s.participant_id, on_error=config["on_subject_error"])
    steps = [dict(step="denoise", kwargs=dict(bold=s.bold, mask=s.mask, out_bold=series["bold"],
                                              out_json=series["json"], work_dir=work_dir("regress", key),
                                              options=REGRESS_OPTIONS, log=log_path("regress", key), **common)),
             dict(step="measure", kwargs=dict(measure=spec.name, bold=series["bold"], bold_json=series["json"],
                                              mask=s.mask, outputs=outs, work_dir=work_dir(step, key),
                                              options=step_options(spec, config[spec.config_section]),
                                              threads=spec.threads, log=log_path(step, key), **common))]
    for m in GEN_MEASURES:
        if m.step_name == step:
            steps.append(dict(step="parcellate", kwargs=dict(
                in_map=gen_parcel_map(m, key), in_json=outs["json"], valid_mask=outs["mask"],
                atlas_image=ATLAS_IMAGE, atlas_labels=ATLAS_LABELS, measure=m.name,
                out_tsv=out_path(m.name, "parcels", ".tsv", scan=key),
                out_json=out_path(m.name, "parcels", ".json", scan=key), work_dir=work_dir("parcellate", key),
                session=s.session or "", log=log_path(f"parcellate_{m.name}", key), **common)))
    return dict(key=key, participant_id=s.participant_id, steps=steps)


if GEN_MEASURES:

    rule regress:
        input:
            bold=lambda w: scan_of(w).bold,
            mask=lambda w: scan_of(w).mask,
            confounds=lambda w: scan_of(w).confounds,
        output:
            bold=temp(out_path("regressed", "bold", ".nii.gz")),
            json=out_path("regressed", "bold", ".json"),
        params:
            participant_id=lambda w: scan_of(w).participant_id,
            options=REGRESS_OPTIONS,
            work_dir=work_dir("regress"),
            on_error=config["on_subject_error"],
        log:
            log_path("regress"),
        resources:
            mem_mb=scan_mem_mb(1500, 12),
            runtime=scan_runtime(10, 0.1),
        group:
            "subject"
        conda:
            os.path.join(ENVS, "reho.yaml")
        script:
            "../../scripts/denoise.py"


for _step, _spec in GEN_STEPS.items():

    rule:
        name:
            _step
        input:
            bold=out_path("regressed", "bold", ".nii.gz"),
            bold_json=out_path("regressed", "bold", ".json"),
            mask=lambda w: scan_of(w).mask,
        output:
            **gen_outputs(_step),
        params:
            measure=_spec.name,
            options=step_options(_spec, config[_spec.config_section]),
            participant_id=lambda w: scan_of(w).participant_id,
            work_dir=work_dir(_step),
            on_error=config["on_subject_error"],
        threads: _spec.threads
        log:
            log_path(_step),
        resources:
            mem_mb=scan_mem_mb(*_spec.resources[:2]),
            runtime=scan_runtime(*_spec.resources[2:]),
        group:
            "subject"
        conda:
            os.path.join(ENVS, _spec.env)
        script:
            "../../scripts/measure.py"

    if GEN_BATCHES[_step]:

        rule:
            name:
                f"{_step}_batch"
            input:
                unpack(lambda w, _step=_step: dict(bold=[SCANS[k].bold for k in GEN_BATCHES[_step][w.batch]],
                                                   mask=[SCANS[k].mask for k in GEN_BATCHES[_step][w.batch]],
                                                   confounds=[SCANS[k].confounds for k in GEN_BATCHES[_step][w.batch]])),
                atlas_image=ATLAS_IMAGE,
                atlas_labels=ATLAS_LABELS,
            output:
                batch_record(_step),
            params:
                plan=lambda w, _step=_step: [gen_chain(_step, k) for k in GEN_BATCHES[_step][w.batch]],
                intermediates=lambda w, _step=_step: [out_path("regressed", "bold", ".nii.gz", scan=k)
                                                      for k in GEN_BATCHES[_step][w.batch]],
            threads: _spec.threads
            log:
                os.path.join(OUT, "logs", f"{_step}_batch", "batch-{batch}.log"),
            resources:
                mem_mb=batch_mem_mb(_spec.resources[0], _spec.resources[1] + 12,
                                    lambda w, _step=_step: [file_mb(SCANS[k].bold) for k in GEN_BATCHES[_step][w.batch]]),
                runtime=batch_runtime(_spec.resources[2] + 10, _spec.resources[3] + 0.1,
                                      lambda w, _step=_step: [file_mb(SCANS[k].bold) for k in GEN_BATCHES[_step][w.batch]]),
            conda:
                os.path.join(ENVS, _spec.env)
            script:
                "../../scripts/batch.py"


for _spec in GEN_MEASURES:

    rule:
        name:
            f"parcellate_{_spec.name}"
        input:
            map=gen_parcel_map(_spec),
            map_json=gen_outputs(_spec.step_name)["json"],
            valid=gen_outputs(_spec.step_name)["mask"],
            atlas_image=ATLAS_IMAGE,
            atlas_labels=ATLAS_LABELS,
        output:
            tsv=out_path(_spec.name, "parcels", ".tsv"),
            json=out_path(_spec.name, "parcels", ".json"),
        params:
            participant_id=lambda w: scan_of(w).participant_id,
            session=lambda w: scan_of(w).session or "",
            work_dir=work_dir("parcellate"),
            on_error=config["on_subject_error"],
        log:
            log_path(f"parcellate_{_spec.name}"),
        resources:
            mem_mb=scan_mem_mb(1500, 1),
            runtime=scan_runtime(10, 0),
        group:
            "subject"
        conda:
            os.path.join(ENVS, _spec.env)
        script:
            "../../scripts/parcellate.py"

    rule:
        name:
            f"collect_{_spec.name}"
        input:
            **per_scan_inputs(_spec.step_name, GEN_BATCHES[_spec.step_name], **gen_files(_spec)),
        output:
            table=group_path(f"parcels_{_spec.name}.tsv"),
            qc=group_path(f"qc/steps_{_spec.name}.tsv"),
        params:
            files=gen_files(_spec),
            parcellate_step=f"parcellate_{_spec.name}",
        log:
            os.path.join(OUT, "logs", f"collect_{_spec.name}.log"),
        resources:
            mem_mb=cohort_mem_mb(2000, 0.1),
            runtime=cohort_runtime(15, 0.005),
        group:
            "cohort"
        conda:
            os.path.join(ENVS, "cohort.yaml")
        script:
            "../../scripts/collect_parcels.py"
