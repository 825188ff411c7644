"""The measure registry: one description per per-subject measure.

A :class:`MeasureSpec` says once what the workflow, the batch mode, the cohort stage and the
report need to know about a measure: its name and title, the chain of per-scan steps, the
files its main step declares (BIDS ``desc`` / suffix), which of them is parcellated, its
config section, nipype interface, resource model, threads, QC columns and methods text with
citations. rviflow never imports Snakemake here: the rule files read these specs.

A measure with a ``compute`` function is **generated** (:data:`GENERATED`): workflow/rules/
measures.smk makes its per-scan rules (the input series, the measure's step, parcellation),
its cohort table (``collect_<m>``, in the SLURM "cohort" group), its batch-mode rule and chain,
and adds it to the cohort's measures when its config section says ``enabled: true``; the
report gives it an effect-size section, its methods sentence and references. Adding one takes
its module (with ``compute``), its spec here, its tests, its schema section, config.yaml and
docs: see CONTRIBUTING.md. ReHo and CBF (:data:`WIRED`) keep a hand-written rule for their own
step (reho.smk, cbf.smk: ReHo's nipype node, CBF's ASL inputs), checked against their specs by
tests/measures/test_measures.py; their parcellation and cohort tables are generated like the
others', from BOLD runs or ASL series (``source``).

Also generated from the registry: ``rviflow.pipeline.batches.STEPS``; the cohort's "a user table wins"
rule order (every measure's ``collect_<m>`` gives way to ``import_table`` when
``cohort.tables`` names it); the report's measure titles (:data:`TITLES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Output:
    """A declared per-scan output: BIDS ``desc`` entity, suffix and extension."""

    desc: str
    suffix: str
    ext: str = ".nii.gz"


@dataclass(frozen=True)
class MeasureSpec:
    """One per-subject measure, described once.

    Attributes
    ----------
    name : the measure's key (group/parcels_<name>.tsv, config ``cohort.tables.<name>``).
    title : how the report names it.
    chain : the per-scan steps in order; the first names the series a BOLD measure reads
        (``denoise``: confounds regressed and band-passed; ``regress``: not band-passed), the
        last before ``parcellate`` is the measure's own.
    step : "module:function" of the measure's step (in :mod:`rviflow.pipeline.steps`).
    interface : "module:class" of its nipype interface.
    outputs : {output key: Output} the measure's step declares (json = its sidecar).
    parcel_map : config key choosing the parcellated map, and its allowed values (output keys);
        or a fixed output key.
    config_section : its section in config.yaml / the schema.
    resources : (base MB, MB per input MB, base min, min per input MB) for scan_mem_mb /
        scan_runtime (workflow/rules/common.smk).
    threads : threads its step may use (passed down to the function).
    qc_columns : numbers from its sidecar's QC block that group/qc.tsv carries.
    unit : unit of the parcellated values.
    citations : keys of :data:`rviflow.report.methods.REFERENCES` its methods text cites.
    methods : the methods sentence (``str.format`` fields from its config section).
    parcel_choices : the maps ``parcel_map`` may name (empty: ``parcel_map`` is an output key).
    compute : "module:function" writing the maps of one scan (generated measures):
        ``compute(bold_file, mask_file, outputs, threads=1, **options) -> {"Parameters": ...,
        "QC": ...}``; options are the config section's keys but ``enabled`` and ``*parcel_map``.
    references : {citation key: reference text} for keys not in rviflow.report.methods.
    source : what its per-scan steps read: "bold" (fMRIPrep BOLD runs, wildcard ``{scan}``) or
        "asl" (ASL series / perfusion maps, ``{aslscan}``); its parcellation and cohort table
        are generated either way.
    """

    name: str
    title: str
    chain: tuple[str, ...]
    step: str
    interface: str
    outputs: dict[str, Output]
    parcel_map: str
    config_section: str
    resources: tuple[float, float, float, float]
    threads: int = 1
    qc_columns: tuple[str, ...] = ()
    unit: str = ""
    citations: tuple[str, ...] = ()
    methods: str = ""
    parcel_choices: tuple[str, ...] = field(default=())
    compute: str = ""
    references: dict[str, str] = field(default_factory=dict)
    source: str = "bold"

    @property
    def step_name(self) -> str:
        """Its own step (and per-scan rule): the chain's step before ``parcellate``."""
        return self.chain[-2]


REHO = MeasureSpec(
    name="reho", title="ReHo", chain=("denoise", "reho", "parcellate"),
    step="rviflow.pipeline.steps:reho_step", interface="rviflow.pipeline.interfaces:ComputeReHo",
    outputs={"reho": Output("reho", "bold"), "mreho": Output("mreho", "bold"), "zreho": Output("zreho", "bold"),
             "mask": Output("reho", "mask"), "json": Output("reho", "bold", ".json")},
    parcel_map="parcel_map", parcel_choices=("reho", "mreho", "zreho"), config_section="reho",
    resources=(1500, 6, 10, 0.05), threads=4, qc_columns=("mean_reho",), unit="Kendall's W",
    citations=("zang", "afni"),
    methods="Regional homogeneity (ReHo) was Kendall's W of each voxel's series with its {neighbourhood}-voxel "
            "neighbourhood.",
)

CBF = MeasureSpec(
    name="cbf", title="CBF", chain=("cbf", "parcellate"),
    step="rviflow.pipeline.steps:cbf_step", interface="rviflow.pipeline.interfaces:QuantifyCBF",
    outputs={"cbf": Output("mean", "cbf"), "rel": Output("rel", "cbf"), "mask": Output("cbf", "mask"),
             "json": Output("mean", "cbf", ".json")},
    parcel_map="cbf", config_section="cbf", resources=(2000, 10, 15, 0.2),
    qc_columns=("mean_gm_cbf", "spatial_cov", "fraction_negative"), unit="ml/100 g/min",
    citations=("alsop", "aslprep"), source="asl",
    methods="Cerebral blood flow (CBF, ml/100 g/min) was quantified from arterial spin labelling.",
)

RCBF = MeasureSpec(
    name="rcbf", title="relative CBF", chain=CBF.chain, step=CBF.step, interface=CBF.interface,
    outputs=CBF.outputs, parcel_map="rel", config_section="cbf", resources=CBF.resources,
    qc_columns=CBF.qc_columns, unit="ratio to the reference region", citations=CBF.citations, source="asl",
    methods="Relative CBF was CBF divided by its mean in the {reference} reference.",
)

_ALFF_OUTPUTS = {k: Output(k, "bold") for k in ("alff", "malff", "zalff", "falff", "mfalff", "zfalff")} | {
    "mask": Output("alff", "mask"), "json": Output("alff", "bold", ".json")}
_ALFF_REFERENCES = {
    "zang2007": "Zang YF, et al. Altered baseline brain activity in children with ADHD revealed by resting-state "
                "functional MRI. Brain Dev. 2007;29(2):83-91. doi:10.1016/j.braindev.2006.07.002",
    "zou2008": "Zou QH, et al. An improved approach to detection of amplitude of low-frequency fluctuation (ALFF) "
               "for resting-state fMRI: fractional ALFF. J Neurosci Methods. 2008;172(1):137-141. "
               "doi:10.1016/j.jneumeth.2008.04.012",
}
ALFF = MeasureSpec(
    name="alff", title="ALFF", chain=("regress", "alff", "parcellate"),
    step="rviflow.pipeline.steps:measure_step", interface="rviflow.pipeline.interfaces:ComputeMeasure",
    compute="rviflow.measures.alff:compute_alff", outputs=_ALFF_OUTPUTS,
    parcel_map="parcel_map", parcel_choices=("alff", "malff", "zalff"), config_section="alff",
    resources=(1500, 4, 10, 0.02), qc_columns=("mean_alff",), unit="BOLD amplitude",
    citations=("zang2007",), references=_ALFF_REFERENCES,
    methods="The amplitude of low-frequency fluctuations (ALFF) was the mean amplitude (2|FFT|/N) in "
            "{band[0]}-{band[1]} Hz of each voxel's confound-regressed, not band-passed series, as DPABI "
            "computes it; mALFF divides it by the mean in the brain mask and zALFF standardises it there; "
            "the {parcel_map} map was parcellated.",
)
FALFF = MeasureSpec(
    name="falff", title="fALFF", chain=ALFF.chain, step=ALFF.step, interface=ALFF.interface,
    compute=ALFF.compute, outputs=_ALFF_OUTPUTS, parcel_map="falff_parcel_map",
    parcel_choices=("falff", "mfalff", "zfalff"), config_section="alff", resources=ALFF.resources,
    qc_columns=("mean_falff",), unit="ratio", citations=("zou2008",), references=_ALFF_REFERENCES,
    methods="Fractional ALFF (fALFF) was the amplitude summed in that band over the amplitude summed over the "
            "whole spectrum; the {falff_parcel_map} map was parcellated.",
)

#: measures the pipeline computes from images, by name
REGISTRY: dict[str, MeasureSpec] = {m.name: m for m in (REHO, CBF, RCBF, ALFF, FALFF)}
#: measures whose own step has a hand-written rule (reho.smk, cbf.smk); their parcellation and
#: cohort table are generated like every other measure's (workflow/rules/measures.smk)
WIRED = ("reho", "cbf", "rcbf")
#: measures whose rules workflow/rules/measures.smk generates
GENERATED = {name: spec for name, spec in REGISTRY.items() if spec.compute}
#: report titles of every measure the cohort stage may see (registry + regional tables)
TITLES = {**{m.name: m.title for m in REGISTRY.values()}, "thickness": "cortical thickness"}


def resolve(ref: str):
    """The object a "module:attribute" reference names."""
    import importlib

    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def collect_rule(measure: str) -> str | None:
    """Name of the rule that builds group/parcels_<measure>.tsv from images, None if none."""
    return f"collect_{measure}" if measure in REGISTRY else None


def references() -> dict[str, str]:
    """Citation texts the measures bring (merged into the report's reference list)."""
    return {k: v for spec in REGISTRY.values() for k, v in spec.references.items()}


def step_options(spec: MeasureSpec, section: dict) -> dict:
    """The compute function's keyword arguments from the measure's config section."""
    return {k: v for k, v in section.items() if k != "enabled" and not k.endswith("parcel_map")}
