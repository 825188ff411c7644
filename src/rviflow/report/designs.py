"""Report sections and methods text of the treatment and biomarker designs
(:mod:`rviflow.cohort.longitudinal`, :mod:`rviflow.cohort.associations`): the longitudinal
change (maps of the patients' d_z, forest plot, change vs symptom change, response prediction)
and the region-level associations (a surface map of the partial r per measure, variable and
group). A section whose tables this run did not make says so.
"""

from __future__ import annotations

from html import escape

import pandas as pd

from rviflow.report import figures as fig
from rviflow.report.sections import img, missing, table, title_of

#: rows of the map galleries at most (each a surface figure)
MAX_MAPS = 6


def _surface(values: pd.Series, title: str, label: str) -> str:
    uri = fig.surface_d_map(values, title, label)
    return img(uri, title) if uri else missing(f"No surface map for {title}: the regions are not Desikan-Killiany "
                                               "cortical parcels.")


def design_sections(config: dict) -> list[tuple[str, str, callable]]:
    """(id, title, builder) of the designs' sections: only for a run configured with them
    (``design.type: longitudinal``, a non-empty ``associations``)."""
    out = []
    if config.get("design", {}).get("type") == "longitudinal":
        out.append(("longitudinal", "Longitudinal change", longitudinal_section))
    if config.get("associations"):
        out.append(("associations", "Region-level associations", associations_section))
    return out


def longitudinal_section(run) -> str:
    ch, note = run.table("change.tsv", ["measure", "region", "group", "change", "d_z", "q_fdr"])
    if ch is None:
        return missing(f"No longitudinal change: {note} (config design.type: longitudinal makes it).")
    design = run.config.get("design", {})
    html = [f"<p>Baseline ses-{escape(str(design.get('baseline', '?')))}, follow-up "
            f"ses-{escape(str(design.get('followup', '?')))}; change = follow-up - baseline per region, paired t "
            "test within each group (d_z = mean change / SD of the change), the difference between groups adjusted "
            "for covariates and site; q = BH FDR over regions. Subjects without a follow-up are in the "
            "baseline analyses only (group/qc.tsv, step session).</p>"]
    for (measure, group), rows in ch.groupby(["measure", "group"], sort=False):
        title = f"{title_of(measure)} change, {group}"
        n_sig = int((rows["q_fdr"] < 0.05).sum())
        html.append(f"<h3>{escape(title)}</h3><p>n = {rows['n'].max():.0f} with both sessions; {n_sig} region(s) "
                    f"with q &lt; 0.05.</p>")
        html.append(_surface(rows.set_index("region")["d_z"], title, "d_z of the change (follow-up - baseline)"))
        forest = rows.assign(d=rows["change"])  # the forest plot draws d with its CI: here the change
        html.append(img(fig.forest_plot(forest, f"{title} (measure units)"), f"{title}: change per region, 95% CI"))
        top = rows.reindex(rows["p"].sort_values().index).head(10)
        html.append(table(top))
    ca, note = run.table("change_associations.tsv", ["measure", "region", "symptom", "group", "r_partial", "q_fdr"])
    html.append("<h3>Change vs symptom change</h3>")
    if ca is None or ca.empty:
        why = note or "no group had enough subjects with both sessions and scores"
        html.append(missing(f"No change-symptom associations: {why}."))
    else:
        for (measure, sym, group), rows in list(ca.groupby(["measure", "symptom", "group"], sort=False))[:MAX_MAPS]:
            title = f"{title_of(measure)} change vs {sym}, {group}"
            html.append(_surface(rows.set_index("region")["r_partial"], title, "partial r"))
        html.append(table(ca.reindex(ca["p"].sort_values().index).head(15)))
    rp, note = run.table("response_prediction.tsv", ["features", "model", "r", "p_perm"])
    html.append("<h3>Baseline prediction of the response</h3>")
    html.append(missing(f"No response prediction: {note}.") if rp is None else
                "<p>Out-of-fold r of nested cross-validated predictions with the observed response; p from "
                "permutations of the response with the whole cross-validation repeated.</p>" + table(rp))
    return "".join(html)


def associations_section(run) -> str:
    a, note = run.table("associations.tsv", ["measure", "region", "variable", "group", "r_partial", "q_fdr"])
    if a is None:
        return missing(f"No region-level associations: {note} (config associations: lists the variables).")
    html = ["<p>Per region, OLS of the regional value on the variable with covariates and site; partial r with "
            "Fisher 95% CI; q = BH FDR over regions per measure, variable and group.</p>"]
    groups = list(a.groupby(["measure", "variable", "group"], sort=False))
    for (measure, var, group), rows in groups[:MAX_MAPS]:
        title = f"{title_of(measure)} ~ {var}, {group}"
        n_sig = int((rows["q_fdr"] < 0.05).sum())
        html.append(f"<h3>{escape(title)}</h3><p>n = {rows['n'].max():.0f}; {n_sig} region(s) with q &lt; 0.05.</p>")
        html.append(_surface(rows.set_index("region")["r_partial"], title, "partial r"))
    if len(groups) > MAX_MAPS:
        html.append(f"<p class='note'>maps of the first {MAX_MAPS} of {len(groups)} analyses</p>")
    html.append(table(a.reindex(a["p"].sort_values().index).head(20)))
    return "".join(html)


def design_methods(config: dict, present: dict[str, bool], c) -> list[str]:
    """Methods paragraphs of the designs that ran (``c`` cites reference keys)."""
    paras = []
    d = config.get("design", {})
    cov = ", ".join(config.get("covariates", [])) or "no covariates"
    site = " and site" if config.get("site_column") else ""
    if present.get("change"):
        resp, pred = d.get("response", {}), d.get("prediction", {})
        text = (f"In the longitudinal design, each subject's baseline (ses-{d.get('baseline')}) and follow-up "
                f"(ses-{d.get('followup')}) scans were processed alike; the case-control statistics used the baseline. "
                f"Regional change (follow-up minus baseline) was tested within each group by a paired t test (d_z = "
                f"mean change / SD of the change; covariates are not in this test: site offsets cancel in a change, "
                f"and a covariate-adjusted mean tests a conditional null), and between groups by a linear model of the "
                f"change on group, {cov}{site}; p values were FDR-corrected across regions {c('bh')}. The change was "
                f"related to the change in {', '.join(d.get('symptoms', []))} (follow-up minus baseline) by partial "
                f"correlation adjusted for {cov}{site}, with Fisher confidence intervals.")
        if present.get("response_prediction"):
            models = " and ".join({"ridge": "ridge regression (penalty by leave-one-out error within the training "
                                            "fold)", "svr": "a linear support vector regression (C by inner "
                                                            f"{pred.get('inner_folds', 3)}-fold search)"}[m]
                                  for m in pred.get("models", []))
            text += (f" The {resp.get('kind', 'percent')} reduction of {resp.get('symptom') or d.get('symptoms', ['?'])[0]} "
                     f"was predicted from the baseline regional values by {models} in "
                     f"{pred.get('outer_folds', 5)}-fold cross-validation {c('sklearn')}"
                     + (f", with {cov}{site} regressed out of the features and the response within each training "
                        "fold" if pred.get("covariates", True) else "")
                     + f"; performance was the out-of-fold Pearson r and its p came from {pred.get('n_perm')} "
                       f"permutations of the response within site, the whole nested cross-validation repeated for "
                       f"each {c('ojala')}.")
        paras.append(text)
    if present.get("associations"):
        items = config.get("associations", [])
        variables = ", ".join(dict.fromkeys(v for a in items for v in a.get("variables", [])))
        paras.append(f"Region-level associations of each measure with {variables} were estimated per region by "
                     f"ordinary least squares with the covariates{site} as nuisance terms (on the values before "
                     f"harmonisation, site being in the model), reported as the slope and the partial correlation "
                     f"with Fisher confidence intervals; p values were FDR-corrected across regions {c('bh')}.")
    return paras
