# Rules generated from the measure registry (rviflow.measures.registry): series rules, each generated
# measure's step, batch rules, and the parcellation and cohort table of every measure (ReHo, CBF
# and the generated ones).
# Globals and helpers: measures_inputs.smk. A new measure needs no rule file: see CONTRIBUTING.md.
include: "measures_inputs.smk"


for _src in ["denoise"] + (["regress"] if any(m.chain[0] == "regress" for m in GEN_MEASURES) else []):
    if all(is_fused(step) for step, s in STEP_SPECS.items() if s.chain[0] == _src):
        continue  # made inside the per-scan chain jobs (<step>_scan below)

    rule:
        name:
            _src
        input:
            bold=lambda w: scan_of(w).bold,
            mask=lambda w: scan_of(w).mask,
            confounds=lambda w: scan_of(w).confounds,
        output:
            bold=out_path(SERIES[_src][0], "bold", SERIES_EXT[_src]) if _src == "denoise" and config["denoise"][
                "keep_denoised"] else temp(out_path(SERIES[_src][0], "bold", SERIES_EXT[_src])),
            json=out_path(SERIES[_src][0], "bold", ".json"),
        params:
            participant_id=lambda w: scan_of(w).participant_id,
            options=SERIES[_src][1],
            work_dir=work_dir(_src),
            on_error=config["on_subject_error"],
        threads: 2
        log:
            log_path(_src),
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
    if is_fused(_step):
        continue

    rule:
        name:
            _step
        input:
            bold=series_path(_spec, ".nii.gz"),
            bold_json=series_path(_spec, ".json"),
            mask=lambda w: scan_of(w).mask,
        output:
            **gen_outputs(_step),
        params:
            measure=_spec.base or _spec.name,
            options=gen_options(_spec),
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
            os.path.join(ENVS, "reho.yaml")
        script:
            "../../scripts/measure.py"


for _step, _spec in STEP_SPECS.items():
    if not BATCHES_OF[_step] or BATCH_STEP[_step] != _step:  # none, or it runs in reho_batch
        continue

    rule:
        name:
            f"{_step}_batch"
        input:
            unpack(lambda w, _step=_step: dict(bold=[SCANS[k].bold for k in BATCHES_OF[_step][w.batch]],
                                               mask=[SCANS[k].mask for k in BATCHES_OF[_step][w.batch]],
                                               confounds=[SCANS[k].confounds for k in BATCHES_OF[_step][w.batch]])),
            atlas_image=ATLAS_IMAGE,
            atlas_labels=ATLAS_LABELS,
        output:
            batch_record(_step),
        params:
            plan=lambda w, _step=_step: [measure_chain(_step, k) for k in BATCHES_OF[_step][w.batch]],
            intermediates=lambda w, _step=_step: chain_intermediates(_step, BATCHES_OF[_step][w.batch]),
        threads: _spec.threads
        log:
            os.path.join(OUT, "logs", f"{_step}_batch", "batch-{batch}.log"),
        resources:
            # scans run one after the other: memory of the largest (series + step), runtime summed
            mem_mb=batch_mem_mb(batch_resources(_step)[0], max(batch_resources(_step)[1], 12),
                                lambda w, _step=_step: [file_mb(SCANS[k].bold) for k in BATCHES_OF[_step][w.batch]]),
            runtime=batch_runtime(batch_resources(_step)[2], batch_resources(_step)[3] + 0.1,
                                  lambda w, _step=_step: [file_mb(SCANS[k].bold) for k in BATCHES_OF[_step][w.batch]]),
        conda:
            os.path.join(ENVS, "reho.yaml")
        script:
            "../../scripts/batch.py"


for _step, _spec in STEP_SPECS.items():
    if _step not in FUSED:
        continue

    # per-scan mode, temporary series: the scan's series -> measures -> parcels in one job, on
    # one load of the BOLD (the same steps and files as the separate jobs and the batch jobs)
    rule:
        name:
            f"{_step}_scan"
        input:
            bold=lambda w: scan_of(w).bold,
            mask=lambda w: scan_of(w).mask,
            confounds=lambda w: scan_of(w).confounds,
            atlas_image=ATLAS_IMAGE,
            atlas_labels=ATLAS_LABELS,
        output:
            **scan_chain_outputs(_step),
        params:
            plan=lambda w, _step=_step: [measure_chain(_step, w.scan, log_path(f"{_step}_scan", w.scan))],
            intermediates=lambda w, _step=_step: chain_intermediates(_step, [w.scan]),
            per_scan=True,
        threads: max(2, _spec.threads)
        log:
            log_path(f"{_step}_scan"),
        resources:
            mem_mb=scan_mem_mb(batch_resources(_step)[0], max(batch_resources(_step)[1], 12)),
            runtime=scan_runtime(batch_resources(_step)[2], batch_resources(_step)[3] + 0.1),
        group:
            "subject"
        conda:
            os.path.join(ENVS, "reho.yaml")
        script:
            "../../scripts/batch.py"


for _spec in PARCELLATED:
    _src = SOURCES[_spec.source]
    if _spec.parcellated and not (_spec.source == "bold" and is_fused(_spec.step_name)):  # fc: its step wrote the rows

        rule:
            name:
                f"parcellate_{_spec.name}"
            input:
                map=gen_parcel_map(_spec),
                map_json=gen_outputs(_spec.step_name)["json"],
                valid=gen_outputs(_spec.step_name)["mask"],
                atlas_image=ATLAS_IMAGE,
                atlas_labels=ATLAS_LABELS,
                # CBF: a region's coverage is of its brain voxels (the BOLD mask the CBF grid is on)
                **({"brain": lambda w: cbf_of(w).reference} if _spec.source == "asl" else {}),
            output:
                tsv=out_path(_spec.name, "parcels", ".tsv", scan=_src["key"]),
                json=out_path(_spec.name, "parcels", ".json", scan=_src["key"]),
            params:
                participant_id=lambda w, _of=_src["of"]: _of(w).participant_id,
                session=lambda w, _of=_src["of"]: _of(w).session or "",
                min_coverage=_src["min_coverage"],
                min_regions=config["atlas"]["min_regions"],
                work_dir=work_dir("parcellate", _src["key"]),
                on_error=config["on_subject_error"],
            log:
                log_path(f"parcellate_{_spec.name}", _src["key"]),
            resources:
                mem_mb=scan_mem_mb(1500, 1),
                runtime=scan_runtime(10, 0),
            group:
                "subject"
            conda:
                os.path.join(ENVS, "cbf.yaml") if _spec.source == "asl" else os.path.join(ENVS, "reho.yaml")
            script:
                "../../scripts/parcellate.py"

    rule:
        name:
            f"collect_{_spec.name}"
        input:
            **per_scan_inputs(BATCH_STEP[_spec.step_name], BATCHES_OF[_spec.step_name], **gen_files(_spec)),
        output:
            table=group_path(f"parcels_{_spec.name}.tsv"),
            scans=group_path(f"parcels_{_spec.name}_scans.tsv"),
            qc=group_path(f"qc/steps_{_spec.name}.tsv"),
        params:
            files=gen_files(_spec),
            combine_runs=config["combine_runs"],
            baseline_session=BASELINE_SESSION,  # longitudinal design: the subject table is the baseline's
            **({} if _spec.name == "reho" else dict(parcellate_step=f"parcellate_{_spec.name}" if _spec.parcellated
                                                    else _spec.name)),
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
