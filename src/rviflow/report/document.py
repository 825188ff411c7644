"""One self-contained HTML report of a run: brain maps, plots, QC and a methods paragraph.

:func:`build_report` reads whatever the run produced under ``output_dir`` (group tables,
per-subject maps and sidecars); a section whose inputs are missing or unreadable says so, and a
section that fails to build shows its error: the report step never fails the run. Every image is
an embedded PNG (data URI); the page loads nothing from disk or network. Sections live in
:mod:`rviflow.report.sections`, figures in :mod:`rviflow.report.figures`, the methods text in
:mod:`rviflow.report.methods`.
"""

from __future__ import annotations

import datetime
import json
import traceback
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from rviflow import __version__
from rviflow.report import designs as rd
from rviflow.report import sections as rs
from rviflow.io.bids import atomic_path, software_versions
from rviflow.measures.registry import GENERATED, family_of
from rviflow.pipeline.outcome import failure_of
from rviflow.report.methods import methods_html

#: per-subject map snapshots beyond this many subjects are left out (the table lists everyone)
MAX_SNAPSHOTS = 200
#: measures that always get a section (saying so when absent); others in effect_sizes.tsv follow
CORE_MEASURES = ("reho", "cbf", "thickness")


@dataclass
class RunData:
    """What a run produced, read tolerantly (missing / malformed optional tables -> None + a note)."""

    output_dir: Path
    config: dict
    participants_tsv: str | None = None
    atlas_image: str | None = None
    atlas_labels: str | None = None
    max_snapshots: int = MAX_SNAPSHOTS
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        self.output_dir = Path(self.output_dir)
        self.group = self.output_dir / "group"
        groups = self.config.get("groups", {})
        self.group_column = groups.get("column", "diagnosis")
        self.case, self.control = groups.get("case", "MDD"), groups.get("control", "HC")
        self.covariates = list(self.config.get("covariates", []))
        self.site_column = self.config.get("site_column") or None
        #: False for a tables-only run (no fmriprep_dir): no scans, no per-subject maps
        self.imaging = bool(self.config.get("fmriprep_dir", "unknown"))
        self._cache: dict = {}
        self.participants = self._participants()
        self.group_of = ({} if self.participants is None else
                         dict(zip(self.participants["participant_id"], self.participants[self.group_column])))
        self.qc, self.notes["qc"] = self.table("qc.tsv", ["participant_id", "session", "step", "status", "reason"])
        if self.qc is not None:
            self.qc = self.qc.fillna({"session": "", "reason": ""}).astype({"session": str})
        self.effects, self.notes["effects"] = self.table(
            "effect_sizes.tsv", ["measure", "region", "d", "ci_low", "ci_high", "n_case", "n_control"])
        self.labels = None
        if self.atlas_labels:
            try:
                from rviflow.preprocess.parcellate import read_labels
                self.labels = read_labels(self.atlas_labels)
            except Exception as exc:  # noqa: BLE001 (any unreadable atlas -> the section says so)
                self.notes["atlas"] = str(exc)
        else:
            self.notes["atlas"] = "no atlas given"

    def _participants(self) -> pd.DataFrame | None:
        try:
            p = pd.read_csv(self.participants_tsv, sep="\t", dtype={"participant_id": str})
            if self.group_column not in p:
                raise ValueError(f"no column '{self.group_column}'")
            return p
        except Exception as exc:  # noqa: BLE001
            self.notes["participants"] = f"{self.participants_tsv}: {exc}"
            return None

    def table(self, name: str, columns: list[str]) -> tuple[pd.DataFrame | None, str]:
        """(group/<name> or None, why not): None when absent, unreadable or without ``columns``."""
        if name not in self._cache:
            path = self.group / name
            if not path.exists():
                self._cache[name] = (None, f"group/{name} is not in this run")
            elif (reason := failure_of(path)) is not None:  # a cohort step that failed (rviflow.pipeline.outcome)
                self._cache[name] = (None, f"the step making group/{name} failed: {reason}")
            else:
                try:
                    df = pd.read_csv(path, sep="\t", na_values="n/a", dtype={
                        c: str for c in ("participant_id", "session", "run", "acq")})
                    lack = [c for c in columns if c not in df.columns]
                    self._cache[name] = ((None, f"group/{name} lacks column(s) {', '.join(lack)}") if lack
                                         else (df, ""))
                except Exception as exc:  # noqa: BLE001
                    self._cache[name] = (None, f"group/{name} could not be read ({exc})")
        return self._cache[name]

    def subject_maps(self) -> dict[str, list[tuple[str, str, str]]]:
        """{participant_id: [(label, map path, colour map)]}: ReHo and CBF maps that were made."""
        out: dict[str, list] = {}
        for path in sorted(self.output_dir.glob("sub-*/**/func/*_desc-reho_bold.nii.gz")):
            if _ok(path):
                out.setdefault(path.name.split("_")[0], []).append(("ReHo (Kendall's W)", str(path), "viridis"))
        for path in sorted(self.output_dir.glob("sub-*/**/perf/*_cbf.nii.gz")):
            if _ok(path) and "desc-rel" not in path.name:
                out.setdefault(path.name.split("_")[0], []).append(("CBF (ml/100 g/min)", str(path), "inferno"))
        return out

    def spatial_null(self, a: str, b: str, null: str = "spatial") -> tuple[np.ndarray | None, str]:
        """(null r of measure a vs measure b, where it comes from): the ``null`` (spatial or label)
        the co-localisation step drew and saved (group/colocalisation_null.tsv: map_a, map_b,
        [null], r), never redrawn here. A table without a ``null`` column holds spatial nulls."""
        saved, note = self.table("colocalisation_null.tsv", ["map_a", "map_b", "r"])
        if saved is None:
            return None, note
        kind = saved["null"] if "null" in saved.columns else pd.Series("spatial", index=saved.index)
        r = saved.loc[(saved["map_a"] == a) & (saved["map_b"] == b) & (kind == null), "r"]
        if not len(r):
            return None, f"group/colocalisation_null.tsv has no {null} null rows for {a} vs {b}"
        what = "null maps" if null == "spatial" else "label permutations"
        return r.to_numpy(float), f"{len(r)} {what} saved by the co-localisation step"

    def versions(self) -> dict[str, str]:
        """Software versions recorded by the run's ReHo / CBF sidecars, plus this process's locked packages."""
        vers = {}
        for side in sorted(self.output_dir.glob("sub-*/**/*_desc-reho_bold.json"))[:1] + \
                sorted(self.output_dir.glob("sub-*/**/perf/*_cbf.json"))[:1]:
            try:
                vers.update(json.loads(side.read_text()).get("SoftwareVersions", {}))
            except (OSError, ValueError):
                pass
        for pkg, version in software_versions().items():  # the locked packages, as installed here
            vers.setdefault(pkg, version)
        return vers

    def present(self) -> dict[str, bool]:
        measures = set(self.effects["measure"]) if self.effects is not None else set()
        return dict(reho="reho" in measures, cbf=bool({"cbf", "rcbf"} & measures), thickness="thickness" in measures,
                    harmonized=(self.group / "harmonized").is_dir(),
                    ratio=(self.group / "effect_size_ratio.tsv").exists(),
                    colocalisation=(self.group / "colocalisation.tsv").exists(), rvi=(self.group / "rvi.tsv").exists(),
                    prediction=(self.group / "prediction.tsv").exists(),
                    transcriptomics=any((self.group / "transcriptomics").glob("*_genes.tsv")),
                    change=(self.group / "change.tsv").exists(),
                    response_prediction=(self.group / "response_prediction.tsv").exists(),
                    associations=(self.group / "associations.tsv").exists(),
                    **{m: any(family_of(x) == m for x in measures) for m in GENERATED})


def _ok(map_path: Path) -> bool:
    """A map that was made (not a failed step's 0-byte placeholder)."""
    return map_path.stat().st_size > 0


def sections(run: RunData) -> list[tuple[str, str, callable]]:
    """(id, title, builder) of every section, in order."""
    extra = [] if run.effects is None else [m for m in dict.fromkeys(run.effects["measure"])
                                             if m not in CORE_MEASURES]
    out = [("cohort", "Cohort overview", rs.cohort_section)]
    for m in (*CORE_MEASURES, *extra):
        out.append((f"measure-{m}", f"Effect sizes: {rs.title_of(m)}", lambda r, m=m: rs.measure_section(r, m)))
    out += [("magnitude", "Functional vs structural magnitude", rs.magnitude_section),
            ("colocalisation", "ReHo-CBF co-localisation", rs.colocalisation_section),
            ("rvi", "Regional vulnerability index (RVI) and prediction", rs.rvi_section),
            *rd.design_sections(run.config),
            ("transcriptomics", "Transcriptomics", rs.transcriptomics_section),
            ("methods", "Methods", lambda r: methods_html(r.config, r.present(), r.versions())),
            ("subjects", "Subject QC", rs.subjects_section)]
    return out


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3a5f;color:#fff;padding:1em 2em} header h1{margin:0 0 .2em}
nav{background:#fff;border-bottom:1px solid #ddd;padding:.5em 2em;position:sticky;top:0}
nav a{margin-right:1em;color:#1f3a5f;text-decoration:none;font-size:.9em}
main{padding:0 2em 2em;max-width:1250px} section{overflow-x:auto;background:#fff;border:1px solid #e3e3e3;margin:1em 0;padding:.5em 1.5em}
figure{margin:.8em 0} figure img{max-width:100%} figcaption{font-size:.85em;color:#555}
.tbl{border-collapse:collapse;font-size:.82em;margin:.5em 0} .tbl td,.tbl th{border-bottom:1px solid #e5e5e5;padding:2px 8px}
.missing{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}
.error{background:#fdecea;border-left:4px solid #c0392b;padding:.5em 1em;white-space:pre-wrap;font-size:.8em}
.fail{color:#c0392b} .subject{border-top:1px solid #eee} .refs{font-size:.85em} .note{font-size:.8em;color:#666}
"""
# Image self-check: an image that does not decode is a console error (the tests' headless
# Chromium run fails on any console message).
SCRIPT = """window.addEventListener('load',function(){document.querySelectorAll('img').forEach(function(i){
if(!i.complete||i.naturalWidth===0){console.error('rviflow report: image did not render: '+i.alt);}});});"""


def scan_count(run: RunData) -> str:
    """'N subjects analysed (M scans)': subjects in the effect sizes, scans that entered them."""
    scans, _ = run.table("parcels_reho_scans.tsv", ["participant_id"])
    qc = run.qc if run.qc is not None else pd.DataFrame(columns=["participant_id", "step", "status"])
    n_sub = qc.loc[qc["step"].astype(str).str.startswith("cohort_") & (qc["status"] == "ok"), "participant_id"].nunique()
    return f"{n_sub} subjects analysed" + (f" ({len(scans)} scans)" if scans is not None else "")


def render(run: RunData, log: list[str]) -> str:
    """The report as one HTML string (sections that fail show their error; see ``log``)."""
    body, nav = [], []
    for sid, title, build in sections(run):
        try:
            html, state = build(run), "ok"
            state = "missing" if html.startswith('<p class="missing">') else state
        except Exception as exc:  # noqa: BLE001 (the report never fails the run)
            log.append(f"section {sid} failed:\n{traceback.format_exc()}")
            html, state = f'<p class="error">This section could not be built: {escape(repr(exc))}</p>', "error"
        nav.append(f'<a href="#{sid}">{escape(title)}</a>')
        body.append(f'<section id="{sid}" data-status="{state}"><h2>{escape(title)}</h2>{html}</section>')
        log.append(f"section {sid}: {state}")
    inputs = (f'{scan_count(run)} &middot; task-{escape(str(run.config.get("task", "?")))}' if run.imaging
              else f"{0 if run.qc is None else run.qc['participant_id'].nunique()} subjects &middot; regional tables")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>rviflow report</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
            f'<header><h1>rviflow report</h1><div>rviflow {escape(__version__)} &middot; {stamp} &middot; '
            f'{inputs} &middot; '
            f'{escape(str(run.output_dir))}</div></header><nav>{"".join(nav)}</nav><main>{"".join(body)}</main>'
            f"<script>{SCRIPT}</script></body></html>")


def build_report(output_dir: str | Path, config: dict, out_html: str | Path, participants_tsv: str | None = None,
                 atlas_image: str | None = None, atlas_labels: str | None = None, log: str | Path | None = None,
                 max_snapshots: int = MAX_SNAPSHOTS) -> Path:
    """Write the run's report to ``out_html`` (atomically); never raises on a missing input.

    Parameters
    ----------
    output_dir : the run's output_dir (group/ tables, sub-*/ maps)
    config : the run's (validated) config, for group labels, covariates and the methods text
    participants_tsv, atlas_image, atlas_labels : the cohort's participants.tsv and the atlas
    log : file for a per-section log (and tracebacks of sections that failed)
    """
    lines: list[str] = []
    try:
        run = RunData(Path(output_dir), config, participants_tsv, atlas_image, atlas_labels, max_snapshots)
        html = render(run, lines)
    except Exception as exc:  # noqa: BLE001 (last resort: a report that says what went wrong)
        lines.append(traceback.format_exc())
        html = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>rviflow report</title></head>'
                f'<body><h1>rviflow report</h1><p class="error">The report could not be built: '
                f"{escape(repr(exc))}</p></body></html>")
    out = Path(out_html)
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as fh:  # appended: under the script runner the rule's log is already open
            fh.write("\n".join(lines) + "\n")
    return out
