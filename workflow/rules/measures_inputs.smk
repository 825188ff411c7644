# Generated from the measure registry (rviflow.measures.registry). Per scan: the BOLD series the
# measures read (denoise: confounds regressed + band-passed, for ReHo; regress: confounds regressed,
# not band-passed, for ALFF-type measures), the step of every generated measure whose config
# section says enabled: true (one rule per step, shared by a family such as alff / falff), and
# parcellation of each measure's chosen map; per cohort: collect_<m>; per scan (temporary series):
# reho_scan, ReHo's chain job with every generated BOLD measure riding in it; batch mode: reho_batch.
# ReHo's own step stays in reho.smk. A new measure needs no rule file (CONTRIBUTING.md).
DENOISE_OPTIONS = {k: v for k, v in config["denoise"].items() if k != "keep_denoised"}


def _gen_measures():
    """Enabled generated measures; a family (fc) becomes its members (fc_<seed>), its config
    checked here, before any job."""
    out = []
    for s in GENERATED.values():
        if config.get(s.config_section, {}).get("enabled"):
            try:
                out += instances(s, config[s.config_section], ATLAS_IMAGE, ATLAS_LABELS)
            except InputError as exc:
                raise WorkflowError(f"rviflow: {exc}") from None
    return out


GEN_MEASURES = _gen_measures()
GEN_STEPS = {s.step_name: s for s in reversed(GEN_MEASURES)}  # the family's first spec names its step
#: every generated BOLD step runs inside ReHo's chain job (reho_scan, reho_batch), after ReHo: one
#: load of the BOLD per scan for all BOLD measures (rviflow.io.nifti.share_reads), one denoising
#: (the measures on ReHo's denoised series first, then those on the regressed series), and the job's
#: removal of a series cannot race a measure reading it. (keep_denoised: separate jobs per step.)
RIDERS = sorted(GEN_STEPS, key=lambda step: GEN_STEPS[step].chain[0] != "denoise")
GEN_BATCHES = {step: REHO_BATCHES for step in GEN_STEPS}
MEASURES.extend(s.name for s in GEN_MEASURES)
#: series rules -> (desc of the output, options); regress keeps the whole spectrum (fALFF needs it)
SERIES = {"denoise": ("denoised", DENOISE_OPTIONS),
          "regress": ("regressed", {**DENOISE_OPTIONS, "high_pass": None, "low_pass": None})}
CBF_SPECS = [REGISTRY[m] for m in CBF_ANALYSED] if CBF_INPUTS else []
MEASURES.extend(s.name for s in CBF_SPECS)
#: measures collected here: ReHo (step in reho.smk), the generated ones, CBF (step in cbf.smk);
#: parcellated, unless their step writes the regional rows itself (fc)
PARCELLATED = [REGISTRY["reho"], *GEN_MEASURES, *CBF_SPECS]
#: BOLD step -> the spec naming it, and its batches (ReHo's: reho.smk)
STEP_SPECS = {"reho": REGISTRY["reho"], **GEN_STEPS}
BATCHES_OF = {"reho": REHO_BATCHES, **GEN_BATCHES, "cbf": CBF_BATCHES}
#: the batch rule (and record) a step's scans run in
BATCH_STEP = {step: "reho" if step in RIDERS else step for step in BATCHES_OF}
#: BOLD chains that run per scan as one job, <step>_scan (a batch of one, the series held in
#: memory): per-scan mode with a temporary series (ReHo's: REHO_FUSED, reho.smk; the regressed
#: series is always temporary)
FUSED = {step for step, s in STEP_SPECS.items() if BATCH_STEP[step] == step and not BATCHES_OF[step]
         and (REHO_FUSED if s.chain[0] == "denoise" else True)}


def is_fused(step):
    """True when ``step`` runs inside a per-scan chain job (its own or, a rider, ReHo's)."""
    return BATCH_STEP.get(step, step) in FUSED


def chain_series(step):
    """The series (denoise, regress) a step's chain job makes, in order."""
    steps = [step] + (RIDERS if step == "reho" else [])
    return list(dict.fromkeys(STEP_SPECS[st].chain[0] for st in steps))


def chain_intermediates(step, keys):
    """The temporary series of a chain job's scans (removed at its end; in memory in the job)."""
    return [out_path(SERIES[src][0], "bold", SERIES_EXT[src], scan=k) for src in chain_series(step)
            if not (src == "denoise" and config["denoise"]["keep_denoised"]) for k in keys]


def scan_chain_outputs(step):
    """Declared outputs of a per-scan chain job: the series' sidecars, every map and sidecar of
    the chain's steps (ReHo's riders included) and each measure's parcels; the temporary series
    itself is never written."""
    steps = [step] + (RIDERS if step == "reho" else [])
    outs = {f"{src}_json": out_path(SERIES[src][0], "bold", ".json") for src in chain_series(step)}
    for st in steps:
        outs.update({f"{st}_{k}": v for k, v in gen_outputs(st).items() if k != "att"})
    for m in PARCELLATED:
        if m.step_name in steps and m.parcellated:
            outs.update({f"{m.name}_parcels_{e[1:]}": out_path(m.name, "parcels", e) for e in (".tsv", ".json")})
    return outs


#: a measure's per-scan source: its scans (key -> plan), the wildcard naming one, the plan of a
#: job and the coverage threshold (its conda env and CBF's brain-mask input are in measures.smk)
SOURCES = {
    "bold": dict(scans=SCANS, key="{scan}", of=scan_of, min_coverage=config["atlas"]["min_coverage"]),
    "asl": dict(scans=CBF_INPUTS, key="{aslscan}", of=cbf_of, min_coverage=CBF["min_coverage"]),
}


def batch_resources(step):
    """(base MB, MB per BOLD MB, base min, min per BOLD MB) of a step's batch job: reho_batch's
    adds its riders' (memory: the largest; run time: the sum)."""
    res = [STEP_SPECS[step].resources] + ([GEN_STEPS[r].resources for r in RIDERS] if step == "reho" else [])
    return max(r[0] for r in res), max(r[1] for r in res), sum(r[2] for r in res), sum(r[3] for r in res)


def series_path(spec, ext, key="{scan}"):
    """The BOLD series (``ext`` .nii.gz: .nii when temporary, SERIES_EXT in reho.smk) or its
    sidecar (.json) a measure reads."""
    ext = SERIES_EXT[spec.chain[0]] if ext == ".nii.gz" else ext
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


def gen_options(spec):
    """The compute function's keyword arguments of a generated measure (its config section)."""
    return step_options(spec, config[spec.config_section], ATLAS_IMAGE, ATLAS_LABELS,
                        min_regions=config["atlas"]["min_regions"], min_coverage=config["atlas"]["min_coverage"])


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
    if spec.parcellated:
        files = {ext[1:]: [out_path(spec.name, "parcels", ext, scan=k) for k in keys] for ext in (".tsv", ".json")}
    else:  # the step wrote the rows (fc); its sidecar is theirs
        files = dict(tsv=[gen_parcel_map(spec, k) for k in keys], json=[gen_outputs(spec.step_name, k)["json"] for k in keys])
    if next(s for s in PARCELLATED if s.step_name == spec.step_name) is spec:
        for step in spec.chain[:-1] if spec.parcellated else spec.chain:
            files[f"{step}_json"] = [series_path(spec, ".json", k) if step in SERIES else gen_outputs(step, k)["json"]
                                     for k in keys]
    return files


def measure_chain(step, key, log=None):
    """One scan's series -> step -> parcellation of each family member (then the RIDERS' steps
    on ReHo's series), as run_batch steps (kwargs of rviflow.pipeline.steps), with the per-scan rules' file
    names (batch.smk). ``log``: every step's one-line log there (a per-scan chain job's own log),
    else in the per-step logs a batch job leaves for each scan."""
    chain = _measure_chain(step, key, log)
    made = {STEP_SPECS[step].chain[0]}
    for rider in RIDERS if step == "reho" else []:
        steps = _measure_chain(rider, key, log)["steps"]
        src = GEN_STEPS[rider].chain[0]
        chain["steps"] += steps[1:] if src in made else steps  # a series made already is not made again
        made.add(src)
    return chain


def _measure_chain(step, key, log=None):
    s, spec = SCANS[key], STEP_SPECS[step]
    outs = gen_outputs(step, key)
    series = dict(bold=series_path(spec, ".nii.gz", key), json=series_path(spec, ".json", key))
    common = dict(participant_id=s.participant_id, on_error=config["on_subject_error"])
    src = spec.chain[0]
    steps = [dict(step="denoise", kwargs=dict(bold=s.bold, mask=s.mask, out_bold=series["bold"],
                                              out_json=series["json"], work_dir=work_dir(src, key),
                                              options=SERIES[src][1], log=log or log_path(src, key), threads=spec.threads,
                                              **common)),
             dict(step="measure" if spec.compute else step, kwargs=dict(
                 bold=series["bold"], bold_json=series["json"], mask=s.mask, outputs=outs, work_dir=work_dir(step, key),
                 options=gen_options(spec) if spec.compute else step_options(spec, config[spec.config_section]),
                 threads=spec.threads, log=log or log_path(step, key), **common,
                 **(dict(measure=spec.base or spec.name) if spec.compute else {})))]
    for m in PARCELLATED:
        if m.step_name == step and m.parcellated:
            steps.append(dict(step="parcellate", kwargs=dict(
                in_map=gen_parcel_map(m, key), in_json=outs["json"], valid_mask=outs["mask"],
                atlas_image=ATLAS_IMAGE, atlas_labels=ATLAS_LABELS, measure=m.name,
                out_tsv=out_path(m.name, "parcels", ".tsv", scan=key),
                out_json=out_path(m.name, "parcels", ".json", scan=key), work_dir=work_dir("parcellate", key),
                session=s.session or "", log=log or log_path(f"parcellate_{m.name}", key),
                min_coverage=config["atlas"]["min_coverage"], min_regions=config["atlas"]["min_regions"], **common)))
    return dict(key=key, participant_id=s.participant_id, steps=steps)
