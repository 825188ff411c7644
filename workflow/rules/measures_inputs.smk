# Generated from the measure registry (rviflow.measures.registry). Per scan: the BOLD series the
# measures read (denoise: confounds regressed + band-passed, for ReHo; regress: confounds regressed,
# not band-passed, for ALFF-type measures), the step of every generated measure whose config
# section says enabled: true (one rule per step, shared by a family such as alff / falff), and
# parcellation of each measure's chosen map; per cohort: collect_<m>; in batch mode: <step>_batch.
# ReHo's own step stays in reho.smk. A new measure needs no rule file (CONTRIBUTING.md).
DENOISE_OPTIONS = {k: v for k, v in config["denoise"].items() if k != "keep_denoised"}
GEN_MEASURES = [s for s in GENERATED.values() if config.get(s.config_section, {}).get("enabled")]
GEN_STEPS = {s.step_name: s for s in reversed(GEN_MEASURES)}  # the family's first spec names its step
GEN_BATCHES = {step: batches_of(step, SCANS) for step in GEN_STEPS}
MEASURES.extend(s.name for s in GEN_MEASURES)
#: series rules -> (desc of the output, options); regress keeps the whole spectrum (fALFF needs it)
SERIES = {"denoise": ("denoised", DENOISE_OPTIONS),
          "regress": ("regressed", {**DENOISE_OPTIONS, "high_pass": None, "low_pass": None})}
CBF_SPECS = [REGISTRY[m] for m in CBF_ANALYSED] if CBF_INPUTS else []
MEASURES.extend(s.name for s in CBF_SPECS)
#: measures parcellated and collected here: ReHo (step in reho.smk), the generated ones, CBF (step
#: in cbf.smk)
PARCELLATED = [REGISTRY["reho"], *GEN_MEASURES, *CBF_SPECS]
#: BOLD step -> the spec naming it, and its batches (ReHo's: reho.smk)
STEP_SPECS = {"reho": REGISTRY["reho"], **GEN_STEPS}
BATCHES_OF = {"reho": REHO_BATCHES, **GEN_BATCHES, "cbf": CBF_BATCHES}
#: a measure's per-scan source: its scans (key -> plan), the wildcard naming one, the plan of a
#: job, the env of its per-scan rules, extra inputs of its parcellation and the coverage rule
SOURCES = {
    "bold": dict(scans=SCANS, key="{scan}", of=scan_of, env="reho.yaml", brain={},
                 min_coverage=config["atlas"]["min_coverage"]),
    "asl": dict(scans=CBF_INPUTS, key="{aslscan}", of=cbf_of, env="cbf.yaml",
                brain=dict(brain=lambda w: cbf_of(w).reference), min_coverage=CBF["min_coverage"]),
}


def series_path(spec, ext, key="{scan}"):
    """The BOLD series (``ext`` .nii.gz) or its sidecar (.json) a measure reads."""
    return out_path(SERIES[spec.chain[0]][0], "bold", ext, scan=key)


def gen_outputs(step, key=None):
    """{output key: path} of a measure step (the union over its family); ``key`` a scan's key, or
    by default its source's wildcard."""
    outs = {}
    for s in PARCELLATED:
        if s.step_name == step:
            k = key or SOURCES[s.source]["key"]
            outs.update({n: out_path(o.desc, o.suffix, o.ext, scan=k) for n, o in s.outputs.items()})
    return outs


def gen_parcel_map(spec, key=None):
    """The map of ``spec`` that is parcellated (its config's *parcel_map choice)."""
    choice = config[spec.config_section][spec.parcel_map] if spec.parcel_choices else spec.parcel_map
    o = spec.outputs[choice]
    return out_path(o.desc, o.suffix, o.ext, scan=key or SOURCES[spec.source]["key"])


def gen_files(spec):
    """The per-scan files collect_<m> reads: parcels + the sidecars of every step of its chain (a
    step's QC goes into its family's first measure's step table only: alff before falff, cbf
    before rcbf)."""
    keys = sorted(SOURCES[spec.source]["scans"])
    files = {ext[1:]: [out_path(spec.name, "parcels", ext, scan=k) for k in keys] for ext in (".tsv", ".json")}
    if next(s for s in PARCELLATED if s.step_name == spec.step_name) is spec:
        for step in spec.chain[:-1]:
            files[f"{step}_json"] = [series_path(spec, ".json", k) if step in SERIES else gen_outputs(step, k)["json"]
                                     for k in keys]
    return files


def measure_chain(step, key):
    """One scan's series -> step -> parcellation of each family member, as run_batch steps
    (kwargs of rviflow.pipeline.steps), with the per-scan rules' file names (batch.smk)."""
    s, spec = SCANS[key], STEP_SPECS[step]
    outs = gen_outputs(step, key)
    series = dict(bold=series_path(spec, ".nii.gz", key), json=series_path(spec, ".json", key))
    common = dict(participant_id=s.participant_id, on_error=config["on_subject_error"])
    src = spec.chain[0]
    steps = [dict(step="denoise", kwargs=dict(bold=s.bold, mask=s.mask, out_bold=series["bold"],
                                              out_json=series["json"], work_dir=work_dir(src, key),
                                              options=SERIES[src][1], log=log_path(src, key), **common)),
             dict(step="measure" if spec.compute else step, kwargs=dict(
                 bold=series["bold"], bold_json=series["json"], mask=s.mask, outputs=outs, work_dir=work_dir(step, key),
                 options=step_options(spec, config[spec.config_section]), threads=spec.threads,
                 log=log_path(step, key), **common, **(dict(measure=spec.name) if spec.compute else {})))]
    for m in PARCELLATED:
        if m.step_name == step:
            steps.append(dict(step="parcellate", kwargs=dict(
                in_map=gen_parcel_map(m, key), in_json=outs["json"], valid_mask=outs["mask"],
                atlas_image=ATLAS_IMAGE, atlas_labels=ATLAS_LABELS, measure=m.name,
                out_tsv=out_path(m.name, "parcels", ".tsv", scan=key),
                out_json=out_path(m.name, "parcels", ".json", scan=key), work_dir=work_dir("parcellate", key),
                session=s.session or "", log=log_path(f"parcellate_{m.name}", key),
                min_coverage=config["atlas"]["min_coverage"], min_regions=config["atlas"]["min_regions"], **common)))
    return dict(key=key, participant_id=s.participant_id, steps=steps)
