"""The HTML report: built by a real run, self-contained, renders in headless Chromium; a run
without the optional inputs (CBF, RVI, transcriptomics, ...) still gets every section."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake

SECTIONS = ["cohort", "measure-reho", "measure-cbf", "measure-thickness", "magnitude", "colocalisation", "rvi",
            "transcriptomics", "methods", "subjects"]


class _Page(HTMLParser):
    """Tags, src/href attributes, section ids and states, and the images of each section."""

    def __init__(self):
        super().__init__()
        self.tags, self.links, self.sections, self.images, self.ids = [], [], {}, {}, set()
        self._section = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("src", "href", "action", "data", "poster"):
            if key in a:
                self.links.append((tag, key, a[key]))
        if tag == "section":
            self._section = a["id"]
            self.sections[a["id"]] = a.get("data-status")
            self.images[a["id"]] = []
        if tag == "img" and self._section:
            self.images[self._section].append(a)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def section_text(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}"[^>]*>(.*?)</section>', html, re.S)
    assert m, sid
    return m.group(1)


def decode_png(uri: str):
    from PIL import Image

    assert uri.startswith("data:image/png;base64,"), uri[:60]
    im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    im.load()
    return im


def assert_self_contained(page: _Page) -> None:
    assert page.links, "no src/href at all"
    for tag, key, value in page.links:
        assert not re.match(r"\s*(https?:|//|file:|ftp:)", value, re.I), (tag, key, value[:80])
        if key == "href":
            assert value.startswith("#") and value[1:] in page.ids, f"dangling link {value}"
        else:
            assert value.startswith("data:image/png;base64,"), (tag, key, value[:60])
    assert not {"link", "iframe", "object", "embed"} & set(page.tags)


# --- the report of a real run ------------------------------------------------------------------

@pytest.mark.workflow
def test_run_writes_a_self_contained_report(pipeline_run):
    proc, out, cohort = pipeline_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    html_path = out / "report" / "rviflow_report.html"
    html = html_path.read_text()
    page = parse(html)
    assert list(page.sections) == [s for s in SECTIONS] + [s for s in page.sections if s not in SECTIONS]
    assert "error" not in page.sections.values(), page.sections
    assert_self_contained(page)
    assert "http://" not in html and "https://" not in html
    for sid, imgs in page.images.items():
        for a in imgs:
            assert decode_png(a["src"]).size[0] > 50 and a.get("alt"), sid
    # ReHo: surface map, volume slices, forest plot; motion QC; RVI / prediction or a note
    assert page.sections["measure-reho"] == "ok"
    alts = [a["alt"] for a in page.images["measure-reho"]]
    assert any("cortical surface" in a for a in alts) and any("axial slices" in a for a in alts)
    assert any("forest plot" in a for a in alts)
    assert any("Motion" in a["alt"] for a in page.images["cohort"])
    for sid in ("measure-cbf", "measure-thickness", "colocalisation", "transcriptomics"):
        assert page.sections[sid] == "ok" or 'class="missing"' in section_text(html, sid), sid
    if page.sections["measure-cbf"] != "ok":
        assert "No CBF in this run" in section_text(html, "measure-cbf")
    if (out / "group" / "colocalisation.tsv").exists():
        alts = [a["alt"] for a in page.images["colocalisation"]]
        assert any("with the reported p" in a for a in alts)
        assert any("null distribution of r" in a for a in alts) or "not shown" in section_text(html, "colocalisation")
        if not pd.read_csv(out / "group" / "colocalisation.tsv", sep="\t")["n_perm"].eq(0).all():
            assert any("label-permutation null distribution of r" in a for a in alts)
        if (out / "group" / "coupling.tsv").stat().st_size > 100:
            assert "Subject-level coupling" in section_text(html, "colocalisation")
    if (out / "group" / "rvi.tsv").exists():
        assert any("ROC" in a["alt"] for a in page.images["rvi"])
    # cohort counts, methods from the config, per-subject snapshots linked from the table
    parts = pd.read_csv(cohort["participants"], sep="\t")
    cohort_html = section_text(html, "cohort")
    assert f"{len(parts)} / {len(parts)}" in cohort_html
    methods = section_text(html, "methods")
    assert "27-voxel neighbourhood" in methods and "0.01-0.08 Hz" in methods and "<ol class=\"refs\">" in methods
    assert "Zang Y" in methods and "nilearn" in methods.lower()
    subj = page.images["subjects"]
    for pid in parts["participant_id"]:
        assert f'href="#subj-{pid}"' in html
        alt = next(a["alt"] for a in subj if a["alt"].startswith(f"{pid}: "))
        assert alt.startswith(f"{pid}: ReHo") and ("CBF" in alt) == (out / "group" / "parcels_cbf.tsv").exists()
    assert "section subjects: ok" in (out / "logs" / "report.log").read_text()


@pytest.mark.workflow
def test_report_is_registered_for_snakemake_report(pipeline_run, tmp_path):
    proc, out, _ = pipeline_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    work = out.parents[1]
    res = run_snakemake(work / "config.yaml", work, "--report", str(tmp_path / "provenance.zip"), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    names = zipfile.ZipFile(tmp_path / "provenance.zip").namelist()
    assert any(n.endswith("rviflow_report.html") for n in names), names[:20]


# --- headless Chromium ---------------------------------------------------------------------------

def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        msg = "chromium is not installed (setup.sh installs the Debian package when run as root)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def render(html_file: Path, tmp: Path) -> tuple[Path, list[str]]:
    """Screenshot of ``html_file`` in headless Chromium (network blocked) and its console lines."""
    shot = tmp / f"{html_file.stem}.png"
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp / 'chromium-profile'}",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
           "--window-size=1280,2400", f"--screenshot={shot}", html_file.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return shot, console


def test_chromium_check_catches_console_errors(tmp_path):
    """The rendering check itself: a broken image and a script error are seen on the console."""
    from rviflow.report.document import SCRIPT

    bad = tmp_path / "bad.html"
    bad.write_text(f'<html><body><img src="data:image/png;base64,bm90IGEgcG5n" alt="broken">'
                   f"<script>{SCRIPT}</script><script>undefinedFunction()</script></body></html>")
    shot, console = render(bad, tmp_path)
    assert shot.exists()
    assert any("image did not render: broken" in ln for ln in console), console
    assert any("undefinedFunction" in ln for ln in console), console


@pytest.mark.workflow
def test_report_renders_in_headless_chromium(pipeline_run, tmp_path):
    proc, out, _ = pipeline_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    shot, console = render(out / "report" / "rviflow_report.html", tmp_path)
    assert console == [], console
    from PIL import Image

    im = Image.open(shot)
    assert im.size == (1280, 2400)
    px = np.asarray(im.convert("L"))
    assert px.std() > 10, "blank screenshot"


# --- missing / malformed optional inputs ---------------------------------------------------------

def _fake_run(root: Path, n: int = 8) -> tuple[Path, Path, dict]:
    """A run with only ReHo effect sizes and QC (no CBF, thickness, RVI, ...), DK region names."""
    labels = pd.read_csv(Path(__file__).parents[2] / "resources" / "atlas" / "desikan_killiany_dseg.tsv", sep="\t")
    rng = np.random.default_rng(0)
    d = rng.normal(0, 0.5, len(labels))
    eff = pd.DataFrame(dict(measure="reho", region=labels["name"], d=d, se=0.3, ci_low=d - 0.6, ci_high=d + 0.6,
                            t=d * 3, p=0.5, q_fdr=np.where(np.arange(len(d)) < 5, 0.01, 0.6), n_case=n // 2,
                            n_control=n // 2))
    ids = [f"sub-{i:03d}" for i in range(1, n + 1)]
    parts = pd.DataFrame(dict(participant_id=ids, diagnosis=["MDD", "HC"] * (n // 2), age=rng.uniform(20, 60, n),
                              sex=["F", "M"] * (n // 2), site=["a"] * (n // 2) + ["b"] * (n // 2)))
    qc = pd.DataFrame([dict(participant_id=p, session="", step="denoise", status="ok",
                            reason=f"mean_fd_mm={0.1 + 0.01 * i}, n_volumes_kept=100") for i, p in enumerate(ids)]
                      + [dict(participant_id=p, session="", step="cohort_reho", status="ok",
                              reason="included in effect sizes") for p in ids[1:]]
                      + [dict(participant_id=ids[0], session="", step="reho", status="failed",
                              reason="NaNs in the brain")])
    out = root / "out"
    (out / "group").mkdir(parents=True)
    eff.to_csv(out / "group" / "effect_sizes.tsv", sep="\t", index=False)
    qc.to_csv(out / "group" / "qc.tsv", sep="\t", index=False)
    parts.to_csv(root / "participants.tsv", sep="\t", index=False)
    config = dict(task="rest", space="MNI152NLin2009cAsym", groups=dict(column="diagnosis", case="MDD", control="HC"),
                  covariates=["age", "sex"], site_column="site", reho=dict(neighbourhood=19, tie_correction=True),
                  denoise=dict(strategy=["motion"], high_pass=0.01, low_pass=0.1))
    return out, root / "participants.tsv", config


def test_report_without_optional_inputs_says_so(tmp_path):
    from rviflow.report.document import build_report

    out, parts, config = _fake_run(tmp_path)
    # a malformed optional table: wrong columns
    pd.DataFrame(dict(subject=["sub-001"], value=[1.0])).to_csv(out / "group" / "rvi.tsv", sep="\t", index=False)
    html_path = build_report(out, config, out / "report" / "r.html", str(parts), log=tmp_path / "r.log")
    html = html_path.read_text()
    page = parse(html)
    assert list(page.sections) == SECTIONS
    assert "error" not in page.sections.values(), (tmp_path / "r.log").read_text()
    assert_self_contained(page)
    for sid in ("measure-cbf", "measure-thickness", "colocalisation", "transcriptomics"):
        assert page.sections[sid] == "missing", sid
    assert "No CBF in this run" in section_text(html, "measure-cbf")
    assert "group/colocalisation.tsv is not in this run" in section_text(html, "colocalisation")
    rvi = section_text(html, "rvi")
    assert "group/rvi.tsv lacks column(s) participant_id, measure, rvi" in rvi
    assert "group/prediction.tsv is not in this run" in rvi
    assert "No CBF QC numbers" in section_text(html, "cohort") and "NaNs in the brain" in section_text(html, "cohort")
    # ReHo still has its surface map and forest plot; no atlas given -> the volume slices say so
    alts = [a["alt"] for a in page.images["measure-reho"]]
    assert any("cortical surface" in a for a in alts) and any("forest plot" in a for a in alts)
    assert "No volume slices" in section_text(html, "measure-reho")
    assert "19-voxel neighbourhood" in section_text(html, "methods")
    assert "7 / 8" in section_text(html, "cohort")  # sub-001 failed: 7 of 8 included


def test_report_survives_missing_group_tables_and_a_failing_section(tmp_path, monkeypatch):
    from rviflow.report import document as report
    from rviflow.report import sections as report_sections
    from rviflow.report.document import build_report

    out, parts, config = _fake_run(tmp_path)
    (out / "group" / "effect_sizes.tsv").unlink()

    def boom(run):
        raise RuntimeError("figure backend exploded")

    monkeypatch.setattr(report_sections, "transcriptomics_section", boom)
    html = build_report(out, config, out / "report" / "r.html", str(tmp_path / "nope.tsv"),
                        log=tmp_path / "r.log").read_text()
    page = parse(html)
    assert list(page.sections) == SECTIONS
    assert page.sections["transcriptomics"] == "error" and "figure backend exploded" in html
    assert page.sections["measure-reho"] == "missing" and "effect_sizes.tsv is not in this run" in html
    assert "participants.tsv could not be read" in section_text(html, "cohort")
    assert "RuntimeError" in (tmp_path / "r.log").read_text()
    assert report.MAX_SNAPSHOTS > 0


def test_transcriptomics_tables_are_plotted(tmp_path):
    from rviflow.report.document import build_report

    out, parts, config = _fake_run(tmp_path)
    (out / "group" / "effect_sizes.tsv").unlink()  # not needed here; spares the brain maps' time
    tx = out / "group" / "transcriptomics"
    tx.mkdir()
    # rviflow.transcriptomics.association.GENE_COLUMNS / PLS_COLUMNS, rviflow.transcriptomics.enrichment.ENRICHMENT_COLUMNS (subset)
    r = np.linspace(-0.8, 0.8, 40)
    pd.DataFrame(dict(gene=[f"G{i}" for i in range(40)], r=r, p_spatial=0.5, q=1 - np.abs(r), pls1_weight=r / 10,
                      z=r * 5)).to_csv(tx / "reho_genes.tsv", sep="\t", index=False)
    pd.DataFrame(dict(component=[1, 2], variance_explained=[0.3, 0.1], cumulative=[0.3, 0.4], p_spatial=[0.01, 0.5],
                      n_null=1000, n_regions=68)).to_csv(tx / "reho_pls.tsv", sep="\t", index=False)
    pd.DataFrame(dict(term=[f"GO:{i:07d} something" for i in range(30)], nes=np.linspace(-2, 2, 30),
                      p=0.01, q=np.linspace(0.001, 0.9, 30))).to_csv(tx / "reho_enrichment_go_bp.tsv", sep="\t",
                                                                     index=False)
    html = build_report(out, config, out / "report" / "r.html", str(parts)).read_text()
    page = parse(html)
    assert page.sections["transcriptomics"] == "ok"
    alts = [a["alt"] for a in page.images["transcriptomics"]]
    assert alts == ["reho: top gene weights", "reho_enrichment_go_bp: enrichment"]
    text = section_text(html, "transcriptomics")
    assert "G0" in text and "G39" in text and "variance_explained" in text


def test_colocalisation_section_shows_both_nulls_and_coupling(tmp_path):
    """Tables written by the co-localisation step itself (two measures, both nulls, coupling):
    the section plots the spatial and the label-permutation null, states the reported p, and
    summarises coupling.tsv apart from co-localisation."""
    from calibration_sim import dk_geometry, simulate_cohort

    from rviflow.cohort.coloc import colocalisation, coupling
    from rviflow.cohort.effects import effect_sizes
    from rviflow.report.document import RunData
    from rviflow.report.sections import colocalisation_section

    values, parts, design = simulate_cohort(n=60, seed=1, measures=("reho", "cbf"))
    eff = pd.concat([effect_sizes(v, design, m) for m, v in values.items()])
    tab, nulls = colocalisation(eff, dk_geometry()[0], "brainsmash", 100, 0, values=values, design=design,
                                sites=parts.set_index("participant_id")["site"], n_perm=100)
    (tmp_path / "group").mkdir()
    for name, df in (("effect_sizes.tsv", eff), ("colocalisation.tsv", tab), ("colocalisation_null.tsv", nulls),
                     ("coupling.tsv", coupling(values, design, [("reho", "cbf")]))):
        df.to_csv(tmp_path / "group" / name, sep="\t", index=False)
    run = RunData(tmp_path, dict(groups=dict(column="diagnosis", case="MDD", control="HC")))
    html = colocalisation_section(run)
    alts = re.findall(r'alt="([^"]*)"', html)
    assert any("with the reported p" in a for a in alts)
    assert any("brainsmash null distribution of r (100 null maps" in a for a in alts)
    assert any("label-permutation null distribution of r (100 label permutations" in a for a in alts)
    assert "intersection-union" in html and "Subject-level coupling" in html and "median_partial_r" in html
