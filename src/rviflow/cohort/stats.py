"""File-level steps of the cohort statistics (one function per Snakemake script / CLI command).

Each ``run_*`` reads regional tables and participants.tsv, computes everything, and only then
writes its outputs (atomically, :func:`rviflow.io.regional.write_all`): a bad input raises
InputError with a one-line message and leaves no half-written table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rviflow.io.bids import read_participants
from rviflow.cohort.effects import design_matrix, effect_sizes, effect_size_ratio, hemisphere_mean_values
from rviflow.errors import InputError
from rviflow.io.regional import load_measures, write_all, write_tsv_atomic
from rviflow.pipeline.runner import tell


@dataclass
class CohortSpec:
    """Who is who in participants.tsv (config keys groups, covariates, site_column, min_per_group)."""

    participants_tsv: str
    group_column: str = "diagnosis"
    case: str = "MDD"
    control: str = "HC"
    covariates: list[str] = field(default_factory=lambda: ["age", "sex"])
    site_column: str | None = "site"
    min_per_group: int = 3
    symptoms: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, participants_tsv: str, groups: dict, covariates, site_column, min_per_group, symptoms=()):
        return cls(participants_tsv, groups["column"], groups["case"], groups["control"], list(covariates),
                   site_column or None, int(min_per_group), list(symptoms))

    def participants(self) -> pd.DataFrame:
        required = [self.group_column, *self.covariates] + ([self.site_column] if self.site_column else [])
        return read_participants(self.participants_tsv, required)

    def design(self, ids: pd.Index | list[str], participants: pd.DataFrame | None = None) -> pd.DataFrame:
        """design_matrix of the participants with data (bad label / missing covariate -> InputError)."""
        p = self.participants() if participants is None else participants
        missing = sorted(set(ids) - set(p["participant_id"]))
        if missing:
            raise InputError(f"{missing[0]}: has regional values but no row in {self.participants_tsv}")
        p = p[p["participant_id"].isin(ids)]
        return design_matrix(p, self.group_column, self.case, self.control, self.covariates, self.site_column)

    def sites(self, participants: pd.DataFrame) -> pd.Series | None:
        if not self.site_column:
            return None
        return participants.set_index("participant_id")[self.site_column].astype(str).rename(self.site_column)

    def symptom_table(self, participants: pd.DataFrame) -> pd.DataFrame | None:
        cols = [c for c in self.symptoms if c in participants.columns]
        if not cols:
            return None
        return participants.set_index("participant_id")[cols].apply(pd.to_numeric, errors="coerce")


def _check_groups(design: pd.DataFrame, spec: CohortSpec, what: str) -> None:
    n1 = int(design["case"].sum())
    n0 = len(design) - n1
    if min(n1, n0) < spec.min_per_group:
        raise InputError(f"{what}: {n1} cases and {n0} controls with data; at least {spec.min_per_group} of each "
                         "are needed (config: min_per_group)")


def _check_values(values: pd.DataFrame, measure: str) -> None:
    """A region without values or with one value in every subject cannot be standardised."""
    sd = values.std()
    bad = sd.index[~(sd > 0)]
    if len(bad):
        raise InputError(f"{measure} {bad[0]}: the region has the same value in every subject (or no values)")


def _combat_covars(spec: CohortSpec, design: pd.DataFrame, participants: pd.DataFrame, with_case: bool = True):
    from rviflow.cohort.harmonize import combat_covariates

    sites = spec.sites(participants)
    if sites is None:
        raise InputError("ComBat needs a site column (config: site_column) or cohort.harmonize: false")
    cov = combat_covariates(design, sites)
    return cov if with_case else cov.drop(columns="case")


# --- inputs: thickness and user tables ----------------------------------------------------------

def run_thickness(source: str, path: str, participants_tsv: str, atlas_labels: str, out_table: str, out_qc: str) -> None:
    """group/parcels_thickness.tsv from FreeSurfer stats (``source`` freesurfer, ``path`` the
    subjects dir) or an ENIGMA table (``source`` enigma), + its QC rows."""
    from rviflow.cohort.tables import qc_table
    from rviflow.preprocess.parcellate import read_labels
    from rviflow.io.regional import match_participants_table
    from rviflow.measures.thickness import enigma_table, freesurfer_table

    regions = list(read_labels(atlas_labels)["name"])
    ids = list(pd.read_csv(participants_tsv, sep="\t", dtype=str)["participant_id"])
    if source == "enigma":
        table, qc = match_participants_table(enigma_table(path, regions), ids, "thickness", Path(path).name)
        _report_left_out(qc)
    else:
        table, qc = freesurfer_table(path, ids, regions)
    write_all({out_table: table, out_qc: qc_table(qc)})
    print(f"thickness ({source}, {path}): {len(table)} subjects, {table.shape[1] - 2} regions")


def _report_left_out(qc: list[dict]) -> None:
    """One line per table row left out for want of a participants.tsv row (also in group/qc.tsv)."""
    for row in qc:
        if row["status"] == "failed" and "no row in participants.tsv" in row["reason"]:
            tell(f"rviflow: {row['participant_id']}: {row['reason']} (see group/qc.tsv)")


def run_import_table(table: str, measure: str, participants_tsv: str, out_table: str, out_qc: str,
                     session: str = "") -> None:
    """A user's regional table, validated, as group/parcels_<measure>.tsv (+ QC rows): rows of
    participants without a participants.tsv row are left out and reported (QC status failed).
    ``session``: only that session's rows (the longitudinal design's baseline)."""
    from rviflow.cohort.tables import qc_table
    from rviflow.io.regional import match_participants_table, read_regional_table

    ids = list(pd.read_csv(participants_tsv, sep="\t", dtype=str)["participant_id"])
    rows = read_regional_table(table, measure)
    if session:
        rows = rows[rows["session"].str.removeprefix("ses-") == session]
    df, qc = match_participants_table(rows, ids, f"table_{measure}", Path(table).name)
    _report_left_out(qc)
    write_all({out_table: df, out_qc: qc_table(qc)})
    print(f"{measure}: {len(df)} rows from {table}; {sum(r['status'] == 'failed' for r in qc)} QC failure(s)")


# --- harmonisation -----------------------------------------------------------------------------

def run_harmonize(table: str, measure: str, spec: CohortSpec, min_per_site: int, out_table: str, out_model: str) -> None:
    """group/harmonized/parcels_<measure>.tsv (one row per subject) + the saved ComBat model."""
    from rviflow.cohort.harmonize import fit_combat, save_model

    values = load_measures({measure: table})[measure]
    parts = spec.participants()
    design = spec.design(values.index, parts)
    _check_groups(design, spec, measure)
    model, adj = fit_combat(values.loc[design.index], _combat_covars(spec, design, parts), min_per_site, what=measure)
    out = adj.reset_index().rename(columns={"index": "participant_id"})
    from rviflow.io.regional import read_regional_table  # the analysed session of each subject, kept

    raw = read_regional_table(table, measure)
    out.insert(1, "session", out["participant_id"].map(dict(zip(raw["participant_id"], raw["session"]))).fillna(""))
    Path(out_model).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(out_model).with_suffix(".tmp")
    save_model(model, tmp)
    write_tsv_atomic(out, out_table)
    tmp.replace(out_model)


# --- effect sizes: hemisphere-averaged table and functional / structural ratio ------------------

def run_effect_summaries(tables: list[str], measures: list[str], spec: CohortSpec, functional: list[str],
                         structural: list[str], n_boot: int, seed: int, out_hemi: str, out_ratio: str) -> None:
    values = load_measures(dict(zip(measures, tables)))
    parts = spec.participants()
    hemi, design_all = [], {}
    for m, v in values.items():
        design = spec.design(v.index, parts)
        _check_groups(design, spec, m)
        _check_values(v.loc[design.index], m)
        design_all[m] = design
        hemi.append(effect_sizes(hemisphere_mean_values(v.loc[design.index]), design, m, spec.min_per_group))
    ids = sorted(set().union(*[set(d.index) for d in design_all.values()]))
    ratio = effect_size_ratio(values, spec.design(ids, parts), [m for m in functional if m in values],
                              [m for m in structural if m in values], n_boot=n_boot, seed=seed)
    write_all({out_hemi: pd.concat(hemi, ignore_index=True), out_ratio: ratio})


# --- co-localisation and coupling ------------------------------------------------------------

def run_colocalisation(effects_tsv: str, atlas_image: str, atlas_labels: str, tables: list[str], measures: list[str],
                       spec: CohortSpec, null_method: str, n_null: int, seed: int, out_coloc: str, out_null: str,
                       out_coupling: str, n_perm: int = 1000) -> None:
    """group/colocalisation.tsv (+ its spatial and label-permutation null r values,
    colocalisation_null.tsv) and coupling.tsv.

    ``tables`` are the ones the effect sizes came from: the label permutation recomputes both
    d-maps from them (:func:`rviflow.cohort.coloc.colocalisation`)."""
    from rviflow.cohort.coloc import colocalisation, coupling
    from rviflow.transcriptomics.nulls import null_coordinates
    from rviflow.preprocess.parcellate import read_labels

    effects = pd.read_csv(effects_tsv, sep="\t")
    coords = null_coordinates(null_method, atlas_image, read_labels(atlas_labels))
    values = load_measures(dict(zip(measures, tables)))
    parts = spec.participants()
    ids = sorted(set().union(*[set(v.index) for v in values.values()]))
    design = spec.design(ids, parts)
    coloc, nulls = colocalisation(effects, coords, null_method, n_null, seed, values=values, design=design,
                                  sites=spec.sites(parts), n_perm=n_perm)
    # ReHo-CBF first (the study's coupling); every other pair of measures too
    pairs = [(a, b) for i, a in enumerate(measures) for b in measures[i + 1:]]
    write_all({out_coloc: coloc, out_null: nulls, out_coupling: coupling(values, design, pairs)})


# --- RVI -------------------------------------------------------------------------------------------

def expected_pattern_source(measure: str, patterns: dict[str, str]) -> pd.Series | None:
    """None = cohort-derived; 'enigma_mdd_thickness' = the shipped ENIGMA-MDD d; else a file."""
    from rviflow.cohort.rvi import ENIGMA_MDD_THICKNESS, read_expected_pattern

    src = patterns.get(measure, "cohort")
    if src in ("", "cohort"):
        return None
    return read_expected_pattern(ENIGMA_MDD_THICKNESS if src == "enigma_mdd_thickness" else src)


def run_rvi(tables: list[str], measures: list[str], spec: CohortSpec, folds: int, seed: int, within_site: bool,
            patterns: dict[str, str], combat_models: list[str] | None, out_rvi: str, out_summary: str,
            out_symptoms: str, out_patterns: list[str], out_references: list[str], n_boot: int = 1000,
            raw_tables: list[str] | None = None, min_per_site: int = 2, n_perm: int = 0) -> None:
    """group/rvi.tsv, rvi_summary.tsv, rvi_symptoms.tsv, expected_pattern_<m>.tsv, models/reference_<m>.pkl.

    ``tables`` are the statistics' tables (ComBat-harmonised on the whole cohort when
    ``combat_models``); with ``raw_tables`` (the unharmonised ones) the cross-validated RVI
    refits ComBat inside each fold instead (:func:`rviflow.cohort.rvi.cross_validated_rvi`). ``n_perm``
    label permutations (0 = none) give the p of the AUCs and of d of the RVI
    (:mod:`rviflow.cohort.rvi_null`).
    """
    from rviflow.cohort.discrimination import SYMPTOM_COLUMNS, rvi_summary, rvi_symptoms
    from rviflow.cohort.harmonize import fit_combat, load_model
    from rviflow.cohort.rvi import cohort_expected_pattern, cross_validated_rvi, fit_reference
    from rviflow.cohort.rvi_null import permutation_p, rvi_permutation_null

    values = load_measures(dict(zip(measures, tables)))
    raw = load_measures(dict(zip(measures, raw_tables))) if raw_tables else {}
    parts = spec.participants()
    sites = spec.sites(parts)
    rvis, eps, refs, perm_p = [], {}, {}, {}
    for i, (m, v) in enumerate(values.items()):
        design = spec.design(v.index, parts)
        _check_groups(design, spec, m)
        v = v.loc[design.index]
        _check_values(v, m)
        ext = expected_pattern_source(m, patterns)
        fold_combat = _combat_covars(spec, design, parts, with_case=False) if m in raw else None
        r = cross_validated_rvi(v, design, m, folds, seed, sites, spec.site_column, within_site,
                                spec.min_per_group, ext, raw.get(m), fold_combat, min_per_site)
        rvis.append(r.rename_axis("participant_id").reset_index().assign(measure=m))
        if n_perm:
            perm_p[m] = permutation_p(rvi_permutation_null(v, design, m, folds, seed, sites, spec.site_column,
                                                           within_site, ext, raw.get(m), fold_combat, min_per_site,
                                                           n_perm))
        full = effect_sizes(v, design, m, spec.min_per_group)
        eps[m] = full[["region", "d", "se", "ci_low", "ci_high", "p", "q_fdr", "n_case", "n_control"]]
        ep = ext if ext is not None else cohort_expected_pattern(v, design, m, spec.min_per_group)
        if m in raw:  # like the folds': ComBat without the diagnosis, so scoring a new subject needs no label
            combat, v_ref = fit_combat(raw[m].loc[design.index], fold_combat, min_per_site, what=m)
        else:
            combat, v_ref = (load_model(combat_models[i]) if combat_models else None), v
        ref = fit_reference(v_ref, design, m, ep, sites, spec.site_column, within_site, combat)
        ref.meta["combat_with_case"] = m not in raw
        ref.meta["participants"] = parts[parts["participant_id"].isin(v.index)].reset_index(drop=True)
        ref.meta["spec"] = spec
        refs[m] = ref
    rvi = pd.concat(rvis, ignore_index=True)
    ids = sorted(set(rvi["participant_id"]))
    design = spec.design(ids, parts)
    summary = rvi_summary(rvi, design, perm_p, n_perm)
    sym = spec.symptom_table(parts)
    symptoms = (rvi_symptoms(rvi, design, sym, n_boot=n_boot, seed=seed) if sym is not None
                else pd.DataFrame(columns=SYMPTOM_COLUMNS))
    cols = ["participant_id", "measure", "rvi", "avi", "fold", "single_region", "best_region"]
    write_all({out_rvi: rvi[cols], out_summary: summary, out_symptoms: symptoms,
               **{p: eps[m] for p, m in zip(out_patterns, measures)}})
    for p, m in zip(out_references, measures):
        refs[m].save(p)  # atomic (bids_io.save_pickle)


def score_new_subjects(reference: str, table: str, participants_tsv: str, out: str) -> pd.DataFrame:
    """RVI / AVI of new subjects against a saved reference (no refitting); writes ``out``."""
    from rviflow.cohort.rvi import Reference, score_with_reference

    ref = Reference.load(reference)
    spec: CohortSpec = ref.meta["spec"]
    new_spec = CohortSpec(**{**spec.__dict__, "participants_tsv": participants_tsv})
    values = load_measures({ref.measure: table})[ref.measure]
    new = new_spec.participants()
    # the reference's own rows fix the covariate coding (dummy levels) of the new subjects
    both = pd.concat([ref.meta["participants"], new[~new["participant_id"].isin(ref.meta["participants"]["participant_id"])]],
                     ignore_index=True)
    design = new_spec.design(list(both["participant_id"]), both).loc[values.index]
    covars = (_combat_covars(new_spec, design, both, with_case=ref.meta.get("combat_with_case", True))
              if ref.combat is not None else None)
    scores = score_with_reference(ref, values, design, new_spec.sites(both), covars)
    scores = scores.rename_axis("participant_id").reset_index().assign(measure=ref.measure)
    write_tsv_atomic(scores[["participant_id", "measure", "rvi", "avi"]], out)
    return scores


# --- prediction --------------------------------------------------------------------------------

def run_prediction(tables: list[str], measures: list[str], spec: CohortSpec, harmonize: bool, min_per_site: int,
                   outer_folds: int, inner_folds: int, seed: int, out: str) -> None:
    from rviflow.cohort.predict import prediction_table

    values = load_measures(dict(zip(measures, tables)))
    parts = spec.participants()
    ids = sorted(set().union(*[set(v.index) for v in values.values()]))
    design = spec.design(ids, parts)
    for m, v in values.items():
        _check_groups(design.loc[design.index.intersection(v.index)], spec, m)
        _check_values(v, m)
    covars = _combat_covars(spec, design, parts, with_case=False) if harmonize else None
    table = prediction_table(values, design, spec.sites(parts), covars, spec.symptom_table(parts),
                             outer_folds, inner_folds, seed)
    write_all({out: table})
