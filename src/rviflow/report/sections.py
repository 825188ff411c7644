"""Sections of the HTML report: each function takes the :class:`~rviflow.report.document.RunData` of a run
and returns an HTML fragment. A section whose inputs are not in this run says so instead.
"""

from __future__ import annotations

import re
from html import escape

import numpy as np
import pandas as pd

from rviflow.report import figures as fig

from rviflow.measures.registry import TITLES as MEASURE_TITLES
from rviflow.pipeline.outcome import failure_of
WHY_MISSING = {
    "cbf": "no ASL series or perfusion maps were found, or config cbf.enabled is no",
    "thickness": "no FreeSurfer subjects directory or ENIGMA table was found (config cohort.thickness)",
}
MAX_TABLE_ROWS = 25


def title_of(measure: str) -> str:
    from rviflow.measures.registry import title_of as registry_title

    return MEASURE_TITLES.get(measure) or registry_title(measure)


def missing(text: str) -> str:
    return f'<p class="missing">{escape(text)}</p>'


def img(uri: str, alt: str) -> str:
    return f'<figure><img src="{uri}" alt="{escape(alt)}"><figcaption>{escape(alt)}</figcaption></figure>'


def table(df: pd.DataFrame, max_rows: int = MAX_TABLE_ROWS) -> str:
    more = f"<p class='note'>first {max_rows} of {len(df)} rows</p>" if len(df) > max_rows else ""
    return df.head(max_rows).to_html(index=False, border=0, classes="tbl", na_rep="n/a",
                                     float_format=lambda x: f"{x:.3g}") + more


def qc_metrics(qc: pd.DataFrame, step: str) -> pd.DataFrame:
    """Numeric ``key=value`` items of the QC reasons of one step, a row per scan (ok rows only)."""
    rows = qc[(qc["step"] == step) & (qc["status"] == "ok")]
    out = []
    for pid, ses, reason in zip(rows["participant_id"], rows["session"], rows["reason"].fillna("")):
        rec = {"participant_id": pid, "session": ses}
        for key, val in re.findall(r"([A-Za-z_][\w]*)=([-+0-9.eE]+|nan)", str(reason)):
            rec[key] = pd.to_numeric(val, errors="coerce")
        out.append(rec)
    return pd.DataFrame(out, columns=None if out else ["participant_id", "session"])


# --- cohort overview ---------------------------------------------------------------------------

def scans_used(qc: pd.DataFrame) -> str:
    """Which session and which scans each subject contributed (qc.tsv steps session, combine_*)."""
    rows = qc[(qc["step"].astype(str).isin(["session"]) | qc["step"].astype(str).str.startswith("combine_"))
              & (qc["status"] == "ok")]
    if rows.empty:
        return ""
    ses = rows.loc[rows["step"] == "session", "session"].value_counts()
    head = ("<p>Session analysed: " + ", ".join(f"ses-{k} ({v} subjects)" for k, v in ses.items()) + "</p>"
            if len(ses) else "")
    return ("<h3>Sessions and scans analysed</h3>" + head
            + table(rows[["participant_id", "session", "step", "reason"]].rename(columns={"reason": "scans"}), 200))


def cohort_section(run) -> str:
    parts, qc, gcol = run.participants, run.qc, run.group_column
    html = []
    if parts is None:
        html.append(missing(f"participants.tsv could not be read: {run.notes.get('participants', '')}"))
    else:
        included = set(qc.loc[qc["step"].astype(str).str.startswith("cohort") & (qc["status"] == "ok"),
                              "participant_id"]) \
            if qc is not None else set()
        p = parts.assign(included=parts["participant_id"].isin(included))
        site = (p[run.site_column].astype(str) if run.site_column in p
                else pd.Series("all", index=p.index)).rename("site")
        listed = pd.crosstab(site, p[gcol], margins=True, margins_name="total")
        inc = pd.crosstab(site, p[gcol], values=p["included"].astype(int), aggfunc="sum", margins=True,
                          margins_name="total").fillna(0).astype(int)
        html.append("<h3>Subjects per group and site</h3><p>included in the effect sizes (passed QC) / listed in "
                    "participants.tsv</p>" + (inc.astype(str) + " / " + listed.astype(str)).to_html(border=0,
                                                                                              classes="tbl"))
        demo = []
        for g, sub in p[p["included"] | (not included)].groupby(gcol):
            rec = {gcol: g, "n": len(sub)}
            for c in run.covariates:
                if c not in sub:
                    continue
                v = sub[c]
                rec[c] = (f"{v.mean():.1f} ({v.std():.1f})" + (f", {v.isna().sum()} missing" if v.isna().any() else "")
                          if pd.api.types.is_numeric_dtype(v)
                          else ", ".join(f"{k} {n}" for k, n in v.value_counts(dropna=False).sort_index().items()))
            demo.append(rec)
        html.append("<h3>Demographics (included subjects; mean (SD) or counts)</h3>" + table(pd.DataFrame(demo)))
    if qc is None:
        html.append(missing(f"group/qc.tsv is not available: {run.notes.get('qc', '')}"))
        return "".join(html)
    html.append(scans_used(qc))
    bad = qc[qc["status"] != "ok"]
    html.append(f"<h3>QC exclusions</h3><p>{len(bad)} failed step(s) over "
                f"{bad['participant_id'].nunique()} subject(s); per-subject details in "
                f"<a href='#subjects'>Subject QC</a>.</p>")
    html.append(table(bad[[c for c in ("participant_id", "session", "run", "acq", "step", "reason") if c in bad]], 200)
                if len(bad)
                else "<p>No scan failed a step.</p>")
    group = run.group_of
    for step, title, cols in (("denoise", "Motion", ["mean_fd_mm", "n_volumes_kept"]),
                              ("cbf", "CBF QC", ["mean_gm_cbf", "spatial_cov", "fraction_negative"])):
        m = qc_metrics(qc, step)
        have = [c for c in cols if c in m]
        html.append(f"<h3>{title}</h3>")
        if not have:
            why = ("" if step != "cbf" else f" ({WHY_MISSING['cbf']})") if run.imaging else \
                " (a tables-only run: no images were processed)"
            html.append(missing(f"No {title} numbers in group/qc.tsv (step '{step}'){why}."))
            continue
        g = m["participant_id"].map(group).fillna("unknown")
        html.append(img(fig.qc_distributions(m[have], g, f"{title} by group"), f"{title} distributions by group"))
    return "".join(html)


# --- per measure ---------------------------------------------------------------------------------

def measure_section(run, measure: str) -> str:
    eff = run.effects
    title = title_of(measure)
    if eff is None:
        return missing(f"No {title} effect sizes: group/effect_sizes.tsv is not available "
                       f"({run.notes.get('effects', '')}).")
    e = eff[eff["measure"] == measure]
    if e.empty:
        why = f" ({WHY_MISSING[measure]})" if measure in WHY_MISSING else ""
        return missing(f"No {title} in this run: group/effect_sizes.tsv has no rows for measure '{measure}'{why}.")
    d = e.set_index("region")["d"]
    n_sig = int((e["q_fdr"] < 0.05).sum()) if "q_fdr" in e else 0
    html = [f"<p>{len(e)} regions; n = {e['n_case'].max():.0f} cases, {e['n_control'].max():.0f} controls; "
            f"{n_sig} region(s) with q(FDR) &lt; 0.05; median |d| = {d.abs().median():.2f}.</p>"]
    surf = fig.surface_d_map(d, f"{title}: Cohen's d on fsaverage5")
    html.append(img(surf, f"{title}: regional d on the cortical surface (DK parcels, fsaverage5)") if surf
                else missing("No surface map: the regions are not Desikan-Killiany cortical parcels."))
    if run.atlas_image and run.labels is not None:
        html.append(img(fig.volume_d_map(d, run.atlas_image, run.labels, title),
                        f"{title}: regional d in the atlas, axial slices (MNI152)"))
    else:
        html.append(missing(f"No volume slices: the atlas could not be read ({run.notes.get('atlas', '')})."))
    html.append(img(fig.forest_plot(e, f"{title}: regional effect sizes"), f"{title}: forest plot of regional d"))
    top = e.reindex(e["d"].abs().sort_values(ascending=False).index).head(10)
    html.append("<h3>Largest effects</h3>" + table(top))
    return "".join(html)


def magnitude_section(run) -> str:
    html = []
    if run.effects is not None and len(run.effects):
        med = run.effects.groupby("measure", sort=False)["d"].apply(lambda s: s.abs().median())
        html.append(img(fig.magnitude_plot(med, "Effect magnitude per measure"),
                        "Median |d| across regions per measure"))
    ratio, note = run.table("effect_size_ratio.tsv", ["measure_a", "measure_b", "ratio"])
    if ratio is None or ratio.empty:
        html.append(missing(f"No functional-vs-structural ratio: {note or 'group/effect_size_ratio.tsv is empty'} "
                            "(it needs a functional and a structural measure, e.g. ReHo and thickness)."))
    else:
        html.append("<h3>Functional / structural ratio of median |d| (bootstrap CI)</h3>" + table(ratio))
    return "".join(html)


# --- co-localisation -----------------------------------------------------------------------------

def colocalisation_section(run) -> str:
    coloc, note = run.table("colocalisation.tsv", ["map_a", "map_b", "r", "p_spatial_null"])
    if coloc is None or coloc.empty:
        return missing(f"No co-localisation: {note or 'group/colocalisation.tsv has no rows'} (it needs two "
                       "measures, e.g. ReHo and CBF).")
    html = [table(coloc), "<p>r is tested against two nulls: null maps of the first map that keep its spatial "
            "autocorrelation (p_spatial_null), and the diagnosis permuted within site with both maps "
            "recomputed (p_label_perm), which keeps the sampling error two maps of the same subjects share "
            "when their measures are coupled. p is the larger (intersection-union test): co-localisation only "
            "when r beats both. This is not the subject-level coupling below (coupling.tsv: do two measures go "
            "together across subjects within a region?), which can be strong without any disease effect.</p>"]
    for _, row in coloc.iterrows():
        a, b = row["map_a"], row["map_b"]
        da = run.effects[run.effects["measure"] == a].set_index("region")["d"].rename(title_of(a))
        db = run.effects[run.effects["measure"] == b].set_index("region")["d"].rename(title_of(b))
        pair = f"{title_of(a)} vs {title_of(b)}"
        p = row["p"] if "p" in row and pd.notna(row.get("p")) else row["p_spatial_null"]
        html.append(img(fig.coloc_scatter(da, db, row["r"], p, pair), f"{pair}: regional d with the reported p"))
        method = row.get("null_method", "spatial")
        for kind, label in (("spatial", f"{method} null"), ("label", "label-permutation null")):
            null, how = run.spatial_null(a, b, kind)
            if null is not None:
                html.append(img(fig.null_histogram(null, row["r"], pair, label),
                                f"{pair}: {label} distribution of r ({how})"))
            elif kind == "spatial" or row.get("n_perm", 0):
                html.append(missing(f"{label.capitalize()} distribution of {pair} not shown: {how}."))
    coupling, _ = run.table("coupling.tsv", ["measure_a", "measure_b", "region", "r", "q_fdr"])
    if coupling is not None and not coupling.empty:
        summ = (coupling.groupby(["measure_a", "measure_b"], sort=False)
                .agg(regions=("region", "size"), median_partial_r=("r", "median"),
                     regions_q_below_0_05=("q_fdr", lambda q: int((q < 0.05).sum()))).reset_index())
        html.append("<h3>Subject-level coupling (coupling.tsv)</h3><p>Partial r across subjects of two measures in "
                    "each region, adjusted for diagnosis, covariates and site (per region in coupling.tsv).</p>"
                    + table(summ))
    return "".join(html)


# --- RVI ---------------------------------------------------------------------------------------

def clip_auc(df: pd.DataFrame | None, kind: str) -> pd.DataFrame | None:
    """AUC rows (``kind`` column starting with 'auc') with estimate and CI clipped to [0, 1]: a
    Wald / DeLong CI of an AUC near 1 (small cohorts) can pass 1 or be undefined."""
    if df is None or kind not in df or not {"estimate", "ci_low", "ci_high"} <= set(df.columns):
        return df
    df = df.copy()
    rows = df[kind].astype(str).str.startswith("auc")
    for c in ("estimate", "ci_low", "ci_high"):
        df.loc[rows, c] = pd.to_numeric(df.loc[rows, c], errors="coerce").clip(0.0, 1.0)
    return df


def rvi_section(run) -> str:
    rvi, note = run.table("rvi.tsv", ["participant_id", "measure", "rvi"])
    html = []
    if rvi is None or rvi.empty:
        html.append(missing(f"No RVI: {note or 'group/rvi.tsv has no rows'}."))
    else:
        rvi = rvi.assign(group=rvi["participant_id"].map(run.group_of))
        if rvi["group"].isna().all():
            return missing("RVI not shown: no participant of group/rvi.tsv has a group in participants.tsv.")
        html.append(img(fig.group_distributions(rvi, "rvi", "measure", "group", "RVI by group"),
                        "RVI distributions by group and measure"))
        known = rvi[rvi["group"].isin([run.case, run.control])]
        structural = known[known["measure"] == "thickness"].set_index("participant_id")["rvi"]
        for m, g in known.groupby("measure", sort=False):
            if m == "thickness" or g["group"].nunique() < 2:
                continue
            case = (g["group"] == run.case).to_numpy()
            curves = {f"RVI {title_of(m)}": (g["rvi"].to_numpy(float), case)}
            if "single_region" in g and g["single_region"].notna().all():
                curves[f"best single region ({title_of(m)})"] = (g["single_region"].to_numpy(float), case)
            s = structural.reindex(g["participant_id"])
            if s.notna().all() and len(s):
                curves["structural RVI (thickness)"] = (s.to_numpy(float), case)
            html.append(img(fig.roc_curves(curves, f"ROC: {title_of(m)}"),
                            f"ROC curves: RVI {title_of(m)} vs best single region vs structural RVI"))
    for name, what in (("rvi_summary.tsv", "Discrimination (AUC, DeLong CI)"), ("rvi_symptoms.tsv", "RVI and symptoms")):
        t, note = run.table(name, ["measure"])
        t = clip_auc(t, "statistic")
        html.append(f"<h3>{what}</h3>" + (table(t) if t is not None and len(t) else
                                           missing(f"Not available: {note or f'group/{name} has no rows'}.")))
    pred, note = run.table("prediction.tsv", ["features", "model", "metric", "estimate", "ci_low", "ci_high"])
    html.append("<h3>Prediction (nested cross-validation)</h3>")
    if pred is None or pred.empty:
        html.append(missing(f"No prediction results: {note or 'group/prediction.tsv has no rows'}."))
    else:
        pred = clip_auc(pred, "metric")
        auc = pred[pred["metric"] == "auc"]
        if len(auc):
            html.append(img(fig.estimate_plot(auc, auc["features"] + " / " + auc["model"], "AUC (95% CI)",
                                              "Diagnosis prediction", ref=0.5, limits=(0.0, 1.0)),
                            "Prediction AUCs with 95% CIs"))
        html.append(table(pred, 60))
    return "".join(html)


# --- transcriptomics ---------------------------------------------------------------------------

def _pick(df: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    low = {c.lower(): c for c in df.columns}
    return next((low[n] for n in names if n in low), None)


TX_TESTS = (
    "<p>Tests: a gene's <code>p_spatial</code> and PLS1's <code>p_spatial</code> compare the observed r / "
    "variance explained with their values for the map's null maps (BrainSMASH or spin; they keep its spatial "
    "autocorrelation). Enrichment <code>p</code> is the ensemble null (Fulcher et al. 2021): a set's score (mean "
    "gene score minus the median over all genes) under the observed gene ranking against its scores under the "
    "gene rankings of the same null maps, in the tail(s) in <code>direction</code>; <code>ora_pos_p</code> / "
    "<code>ora_neg_p</code> count the set's genes among the top / bottom <code>n_top</code> genes against the "
    "same null rankings; <code>q</code> is Benjamini-Hochberg over the sets. <code>gsea_p_gene_perm</code>, when "
    "present, is gseapy's gene-label permutation p: not calibrated for AHBA data, shown for reference only.</p>")


def _top_gene_null(root, name: str, gene: str, null_maps: pd.DataFrame) -> np.ndarray | None:
    """r of ``gene`` with each saved null map (the null its p_spatial came from)."""
    expr_path = root / "expression.tsv"
    if not expr_path.exists():
        return None
    expr = pd.read_csv(expr_path, sep="\t", index_col="region", usecols=["region", gene])[gene]
    regions = [c for c in null_maps.columns if c in expr.index]
    x, maps = expr[regions].to_numpy(float), null_maps[regions].to_numpy(float)
    x, maps = x - x.mean(), maps - maps.mean(1, keepdims=True)
    return maps @ x / np.sqrt((maps**2).sum(1) * (x**2).sum()).clip(1e-300)


def transcriptomics_section(run) -> str:
    root = run.group / "transcriptomics"
    genes = sorted(root.glob("*_genes.tsv")) if root.is_dir() else []
    enrich = sorted(p for p in root.glob("*_enrichment_*.tsv") if not p.name.endswith("_nulls.tsv")) \
        if root.is_dir() else []
    if not genes and not enrich:
        return missing("No transcriptomics in this run (group/transcriptomics/ has no *_genes.tsv or "
                       "*_enrichment_*.tsv).")
    html = [TX_TESTS]
    for path in genes:
        if (reason := failure_of(path)) is not None:  # the step failed or did not run (its reason)
            html.append(missing(f"{path.name}: {reason}"))
            continue
        df = pd.read_csv(path, sep="\t")
        gene = _pick(df, ("gene", "gene_symbol", "symbol")) or df.columns[0]
        name = path.name.removesuffix("_genes.tsv")
        r, q = _pick(df, ("r",)), _pick(df, ("q", "q_fdr", "fdr"))
        top = (df.sort_values([q, r], key=lambda c: c.abs() if c.name == r else c, ascending=[True, False])
               if r and q else df).head(20)
        html.append(f"<h3>Top genes: {escape(name)}</h3>" + table(top, 20))
        w = _pick(df, ("pls1_weight", "pls_weight", "weight", "loading")) or \
            next((c for c in df.columns if c != gene and pd.api.types.is_numeric_dtype(df[c])), None)
        if w is None:
            html.append(missing(f"{path.name} has no numeric weight column."))
            continue
        wt = df.reindex(df[w].abs().sort_values(ascending=False).index).head(20)
        html.append(img(fig.bar_chart(list(wt[gene]), wt[w].to_numpy(float), w, f"{name}: top genes by |{w}|"),
                        f"{name}: top gene weights"))
        pls_path, nulls_path = root / f"{name}_pls.tsv", root / f"{name}_null_maps.tsv"
        pls = pd.read_csv(pls_path, sep="\t") if pls_path.exists() else None
        if pls is not None:
            html.append("<p>PLS components (variance explained, spatial-null p)</p>" + table(pls))
        if not nulls_path.exists():
            html.append(missing(f"Null distributions of {name} not shown: {nulls_path.name} is not in this run."))
            continue
        null_maps = pd.read_csv(nulls_path, sep="\t", index_col="null_index")
        if pls is not None and "pls1_variance_explained" in null_maps:
            html.append(img(fig.observed_vs_null(null_maps["pls1_variance_explained"].to_numpy(float),
                                                 float(pls["variance_explained"].iloc[0]), "PLS1 variance explained",
                                                 f"{name}: PLS1, p = {pls['p_spatial'].iloc[0]:.3g}"),
                            f"{name}: null distribution of PLS1 variance explained"))
        if r and len(top):
            g = str(top[gene].iloc[0])
            null_r = _top_gene_null(root, name, g, null_maps.drop(columns=["pls1_variance_explained"],
                                                                  errors="ignore"))
            if null_r is not None:
                html.append(img(fig.observed_vs_null(null_r, float(top[r].iloc[0]), f"r({g}, null map)",
                                                     f"{name}: {g}, p_spatial = {top['p_spatial'].iloc[0]:.3g}"),
                                f"{name}: null distribution of r for the top gene"))
    for path in enrich:
        if (reason := failure_of(path)) is not None:
            html.append(missing(f"{path.name}: {reason}"))
            continue
        df = pd.read_csv(path, sep="\t")
        term = _pick(df, ("term", "name", "gene_set", "description")) or df.columns[0]
        q = _pick(df, ("q_fdr", "fdr", "q", "fdr q-val", "padj", "p_adj"))
        name = path.name.removesuffix(".tsv")
        html.append(f"<h3>Enrichment: {escape(name)}</h3>")
        if q is None or df.empty:
            html.append(missing(f"{path.name}: no FDR column or no rows.") + table(df, 20))
            continue
        top = df.sort_values(q, kind="mergesort").head(15)
        score = -np.log10(np.clip(pd.to_numeric(top[q], errors="coerce").to_numpy(float), 1e-300, 1))
        sign = _pick(df, ("z", "nes"))
        if sign:
            score = score * np.sign(pd.to_numeric(top[sign], errors="coerce").fillna(1).to_numpy(float))
        html.append(img(fig.bar_chart(list(top[term]), score, "-log10 q(FDR)" + (f", signed by {sign}" if sign else ""),
                                      name), f"{name}: enrichment") + table(top, 15))
        nulls_path = root / f"{name}_nulls.tsv"
        if nulls_path.exists() and "score" in df:
            nulls = pd.read_csv(nulls_path, sep="\t")
            for t in list(top[term])[:3]:
                null = nulls.loc[nulls["term"] == t, "score"].to_numpy(float)
                row = df[df[term] == t].iloc[0]
                if len(null):
                    html.append(img(fig.observed_vs_null(null, float(row["score"]), "set score",
                                                         f"{t[:60]}\np = {row['p']:.3g}, q = {row[q]:.3g}"),
                                    f"{name}: ensemble null of {t}"))
    return "".join(html)


# --- per-subject QC ----------------------------------------------------------------------------

def subjects_section(run) -> str:
    qc = run.qc
    if qc is None:
        return missing("No subject QC: group/qc.tsv is not available.")
    scans = qc[["participant_id", "session"]].drop_duplicates().sort_values(["participant_id", "session"])
    # the step 'session' (which session was analysed) must not clash with the session index column
    status = qc.pivot_table(index=["participant_id", "session"], columns="step", values="status",
                            aggfunc="first").rename(columns={"session": "session_choice"}).reset_index()
    metrics = [qc_metrics(qc, s) for s in ("denoise", "reho", "cbf")]
    tbl = status
    for m in metrics:
        keep = [c for c in ("mean_fd_mm", "n_volumes_kept", "mean_reho", "mean_gm_cbf") if c in m]
        if keep:
            tbl = tbl.merge(m[["participant_id", "session", *keep]], on=["participant_id", "session"], how="left")
    tbl.insert(2, "group", tbl["participant_id"].map(run.group_of))
    anchors = {pid: f"subj-{pid}" for pid in scans["participant_id"]}
    html_tbl = tbl.to_html(index=False, border=0, classes="tbl", na_rep="", float_format=lambda x: f"{x:.3g}")
    for pid, a in anchors.items():
        html_tbl = html_tbl.replace(f"<td>{pid}</td>", f'<td><a href="#{a}">{pid}</a></td>', 1)
    html = [html_tbl]
    if not run.imaging:
        return "".join(html) + missing("No per-subject maps: this run analysed regional tables only (no fmriprep_dir).")
    maps = run.subject_maps()
    shown = 0
    for pid in anchors:
        cards = []
        if maps.get(pid) and shown < run.max_snapshots:
            labels = " and ".join(m[0].split(" (")[0] for m in maps[pid])
            cards.append(img(fig.subject_snapshot(maps[pid], pid), f"{pid}: {labels} maps"))
            shown += 1
        fails = qc[(qc["participant_id"] == pid) & (qc["status"] != "ok")]
        why = "; ".join(f"{s}: {r}" for s, r in zip(fails["step"], fails["reason"]))
        body = "".join(cards) or missing("No map snapshot (failed before a map was made)" if len(fails)
                                         else f"Snapshot left out (only the first {run.max_snapshots} subjects).")
        html.append(f'<div class="subject" id="{anchors[pid]}"><h3>{escape(pid)} '
                    f'({escape(str(run.group_of.get(pid, "?")))})</h3>'
                    + (f"<p class='fail'>{escape(why)}</p>" if why else "") + body + "</div>")
    return "".join(html)
