"""Seed-based functional connectivity (rviflow.measures.connectivity) against plain references.

References written here: numpy ``corrcoef`` of region means taken by hand (boolean indexing per
region), ``arctanh`` for Fisher z, a sphere selected by an explicit loop over voxel centres;
planted series with a known correlation. Bad input: a label not in the atlas, a seed file
missing, a coordinate with no brain voxel within the radius (one line each).
"""

import json
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rviflow.measures.connectivity import (atlas_desc, compute_fc, fc_measures, fisher_z, parse_seeds, seed_connectivity,
                                  sphere_mask)
from rviflow.errors import InputError
from rviflow.measures.registry import FC, family_of, instances, title_of

AFFINE = np.array([[3.0, 0, 0, -30], [0, 3, 0, -30], [0, 0, 3, -15], [0, 0, 0, 1]])
SHAPE = (20, 20, 10)


def _atlas(tmp_path):
    """4 regions (indices 1, 2, 7, 9) as slabs of the grid; 9 lies outside the brain mask."""
    lab = np.zeros(SHAPE, np.int16)
    lab[2:8, 2:18, 2:8] = 1
    lab[8:14, 2:18, 2:8] = 2
    lab[14:18, 2:18, 2:8] = 7
    lab[18:20, :, :] = 9
    img, tsv = tmp_path / "atlas.nii.gz", tmp_path / "atlas.tsv"
    nib.Nifti1Image(lab, AFFINE).to_filename(img)
    pd.DataFrame({"index": [1, 2, 7, 9], "name": ["ctx-a", "ctx-b", "Left-Amygdala", "edge"]}).to_csv(
        tsv, sep="\t", index=False)
    return lab, str(img), str(tsv)


def _scan(tmp_path, lab, n_t=150, seed=0, coupling=0.6):
    """BOLD where region 2 shares a planted signal with region 1 (r ~ coupling^2 / ...) and voxel
    noise everywhere; file named like rviflow's denoised derivative."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=SHAPE + (n_t,)) * 2.0 + 100
    shared = rng.normal(size=n_t)
    data[lab == 1] += 3 * shared
    data[lab == 2] += 3 * coupling * shared
    mask = np.zeros(SHAPE, np.uint8)
    mask[:18] = 1
    data[mask == 0] = 0
    folder = tmp_path / "sub-07" / "ses-2" / "func"
    folder.mkdir(parents=True, exist_ok=True)
    bold = folder / "sub-07_ses-2_task-rest_space-MNI_desc-denoised_bold.nii.gz"
    nib.Nifti1Image(data.astype(np.float32), AFFINE).to_filename(bold)
    mpath = tmp_path / "mask.nii.gz"
    nib.Nifti1Image(mask, AFFINE).to_filename(mpath)
    return data.astype(np.float32), mask > 0, str(bold), str(mpath)


def _outputs(tmp_path, seeds):
    o = dict(connectivity=tmp_path / "conn.tsv", json=tmp_path / "conn.json", mask=tmp_path / "fcmask.nii.gz")
    o.update({f"parcels_{s}": tmp_path / f"{s}.tsv" for s in seeds})
    return {k: str(v) for k, v in o.items()}


def test_fisher_z_and_correlation_match_numpy():
    rng = np.random.default_rng(1)
    t = 80
    base = rng.normal(size=(t, 1))
    regions = base * np.array([1.0, 0.5, 0.0, -0.8]) + rng.normal(size=(t, 4))
    seeds = base + rng.normal(size=(t, 2)) * [0.5, 2.0]
    regions[:, 2] = np.nan  # a region without voxels
    matrix, seed_z = seed_connectivity(regions, seeds)
    ok = [0, 1, 3]
    ref = np.corrcoef(np.hstack([regions[:, ok], seeds]).T)
    np.testing.assert_allclose(matrix[np.ix_(ok, ok)][~np.eye(3, dtype=bool)],
                               np.arctanh(ref[:3, :3][~np.eye(3, dtype=bool)]), atol=1e-10)
    np.testing.assert_allclose(seed_z[:, ok], np.arctanh(ref[3:, :3]), atol=1e-10)
    assert np.isnan(matrix[2]).all() and np.isnan(matrix[:, 2]).all() and np.isnan(seed_z[:, 2]).all()
    assert np.isnan(np.diag(matrix)).all()
    assert np.isfinite(fisher_z(np.array([1.0, -1.0]))).all()


def test_sphere_mask_matches_a_loop_over_voxel_centres():
    center, radius = (1.5, -4.0, 2.0), 7.0
    got = sphere_mask(center, radius, SHAPE, AFFINE)
    ref = np.zeros(SHAPE, bool)
    for i in range(SHAPE[0]):
        for j in range(SHAPE[1]):
            for k in range(SHAPE[2]):
                xyz = AFFINE @ [i, j, k, 1]
                ref[i, j, k] = np.sqrt(sum((xyz[a] - center[a]) ** 2 for a in range(3))) <= radius
    np.testing.assert_array_equal(got, ref)
    assert 10 < ref.sum() < 100


def test_compute_fc_matches_plain_means_and_corrcoef(tmp_path):
    lab, atlas, labels = _atlas(tmp_path)
    data, mask, bold, mpath = _scan(tmp_path, lab)
    seed_file = tmp_path / "seed.nii.gz"
    sf = np.zeros(SHAPE, np.uint8)
    sf[3:5, 3:5, 3:5] = 1
    nib.Nifti1Image(sf, AFFINE).to_filename(seed_file)
    seeds = {"a": {"label": "ctx-a"}, "amyg": {"label": 7}, "ball": {"coordinates": [0, 0, 0], "radius_mm": 5},
             "mine": {"file": str(seed_file)}}
    out = _outputs(tmp_path, seeds)
    rec = compute_fc(bold, mpath, out, seeds=seeds, radius_mm=6, atlas_image=atlas, atlas_labels=labels)
    # plain reference: region means by boolean indexing, np.corrcoef, arctanh
    reg = {n: data[(lab == i) & mask].mean(axis=0, dtype=np.float64) for n, i in
           (("ctx-a", 1), ("ctx-b", 2), ("Left-Amygdala", 7))}
    ball = sphere_mask((0, 0, 0), 5, SHAPE, AFFINE) & mask
    seed_ts = {"a": reg["ctx-a"], "amyg": reg["Left-Amygdala"], "ball": data[ball].mean(axis=0, dtype=np.float64),
               "mine": data[sf > 0].mean(axis=0, dtype=np.float64)}
    names = list(reg)
    mat = pd.read_csv(out["connectivity"], sep="\t", index_col="region", na_values="n/a")
    assert list(mat.index) == ["ctx-a", "ctx-b", "Left-Amygdala", "edge"] == list(mat.columns)
    for a in names:
        for b in names:
            if a != b:
                assert mat.loc[a, b] == pytest.approx(np.arctanh(np.corrcoef(reg[a], reg[b])[0, 1]), abs=1e-5)
    assert mat.loc["edge"].isna().all() and np.isnan(np.diag(mat.to_numpy())).all()
    for s, ts in seed_ts.items():
        row = pd.read_csv(out[f"parcels_{s}"], sep="\t", na_values="n/a", dtype={"session": str})
        assert row.loc[0, "participant_id"] == "sub-07" and row.loc[0, "session"] == "2"
        own = {"a": "ctx-a", "amyg": "Left-Amygdala"}.get(s)
        assert own not in row.columns  # a label seed's own region (z infinite) is left out
        for n in names:
            if n != own:
                assert row.loc[0, n] == pytest.approx(np.arctanh(np.corrcoef(ts, reg[n])[0, 1]), abs=1e-5), (s, n)
        assert np.isnan(row.loc[0, "edge"])
    # the planted coupling of regions 1 and 2 is what the matrix shows
    assert mat.loc["ctx-a", "ctx-b"] > 0.5 and abs(mat.loc["ctx-a", "Left-Amygdala"]) < 0.3
    assert rec["QC"]["seed_voxels"] == {"a": int(((lab == 1) & mask).sum()), "amyg": int(((lab == 7) & mask).sum()),
                                        "ball": int(ball.sum()), "mine": 8}
    assert rec["QC"]["empty_regions"] == ["edge"]
    json.dumps(rec)  # the sidecar record is JSON


def test_planted_correlation_recovered():
    """Series with a known population r: Fisher z of the estimate lands within 3 SE (1/sqrt(T-3))."""
    rng = np.random.default_rng(3)
    t, rho = 2000, 0.4
    x = rng.normal(size=t)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=t)
    _, z = seed_connectivity(np.column_stack([y, rng.normal(size=t)]), x[:, None])
    assert abs(z[0, 0] - np.arctanh(rho)) < 3 / np.sqrt(t - 3)
    assert abs(z[0, 1]) < 3 / np.sqrt(t - 3)


def test_atlas_desc():
    assert atlas_desc("desikan_killiany") == "desikankilliany"
    assert atlas_desc("/x/tpl-MNI152NLin2009cAsym_atlas-Schaefer2018_desc-100Parcels_dseg.nii.gz") == "Schaefer2018"
    assert atlas_desc("/x/my_atlas.v2.nii.gz") == "myatlas"


def test_family_expands_per_seed(tmp_path):
    _, atlas, labels = _atlas(tmp_path)
    section = dict(enabled=True, radius_mm=6, seeds={"pcc": {"coordinates": [0, -52, 26]}, "b": {"label": "ctx-b"}})
    specs = instances(FC, section, atlas, labels)
    assert [s.name for s in specs] == ["fc_pcc", "fc_b"]
    assert all(s.step_name == "fc" and not s.parcellated and s.base == "fc" for s in specs)
    assert specs[0].outputs["connectivity"].desc == "atlas" and specs[0].outputs["parcels_b"].desc == "fcb"
    assert family_of("fc_pcc") == "fc" and family_of("alff") == "alff" and title_of("fc_pcc") == "seed FC: pcc"
    assert fc_measures(FC, section, atlas_image=atlas, atlas_labels=labels)[1].parcel_map == "parcels_b"


def test_bad_seeds_in_config(tmp_path):
    _, _, labels = _atlas(tmp_path)
    table = pd.read_csv(labels, sep="\t")
    with pytest.raises(InputError, match=r"fc.seeds.x: label 'Right-Amygdala' is not in the atlas .*Left-Amygdala"):
        parse_seeds({"x": {"label": "Right-Amygdala"}}, 6, table)
    with pytest.raises(InputError, match="fc.seeds.x: label 3 is not in"):
        parse_seeds({"x": {"label": 3}}, 6, table)
    with pytest.raises(InputError, match=r"fc.seeds.x: seed file .*nope.nii.gz does not exist"):
        parse_seeds({"x": {"file": str(tmp_path / "nope.nii.gz")}}, 6, table)
    with pytest.raises(InputError, match="exactly one of"):
        parse_seeds({"x": {"label": "ctx-a", "coordinates": [0, 0, 0]}}, 6, table)
    with pytest.raises(InputError, match="fc.seeds is empty"):
        parse_seeds({}, 6, table)
    nib.Nifti1Image(np.zeros((3, 3, 3, 4), np.float32), AFFINE).to_filename(tmp_path / "four.nii.gz")
    with pytest.raises(InputError, match="a 3-D mask is needed"):
        parse_seeds({"x": {"file": str(tmp_path / "four.nii.gz")}}, 6, table)
    assert parse_seeds({"x": {"label": "left-amygdala"}}, 6, table)[0].index == 7  # case-insensitive fallback


def test_seed_without_brain_voxels_names_the_file(tmp_path):
    lab, atlas, labels = _atlas(tmp_path)
    _, _, bold, mpath = _scan(tmp_path, lab, n_t=20)
    seeds = {"far": {"coordinates": [200, 0, 0], "radius_mm": 4}}
    with pytest.raises(InputError, match=r"^.*desc-denoised_bold.nii.gz: seed far \(4 mm sphere at \(200, 0, 0\)\) "
                                         r"has no voxel inside the brain mask"):
        compute_fc(bold, mpath, _outputs(tmp_path, seeds), seeds=seeds, radius_mm=6, atlas_image=atlas,
                   atlas_labels=labels)
    seeds = {"e": {"label": "edge"}}  # an atlas region wholly outside this brain mask
    with pytest.raises(InputError, match="seed e \\(atlas region edge\\) has no voxel"):
        compute_fc(bold, mpath, _outputs(tmp_path, seeds), seeds=seeds, radius_mm=6, atlas_image=atlas,
                   atlas_labels=labels)


# --- through the workflow: rules generated from the registry (workflow/rules/measures.smk) ---------

SEED_REGION = "L_superiortemporal"
TARGETS = ("L_lingual", "R_lingual", "L_supramarginal", "R_supramarginal")


def _plant_coupling(cohort, rng):
    """MDD subjects: one band-limited (0.02-0.06 Hz) signal added to the seed region and the target
    regions (seed-target coupling up there, nothing elsewhere); one control's brain mask loses the
    voxels around the sphere seed (its fc step must fail alone). Returns (sphere centre mm, that
    control's participant_id)."""
    from conftest import plant_slow_signal
    from rviflow.synth.cohort import synthetic_grid

    atlas, labels, _ = synthetic_grid()
    grid = np.asarray(atlas.dataobj)
    idx = dict(zip(labels["name"], labels["index"]))
    seed_vox = grid == idx[SEED_REGION]
    targets = np.isin(grid, [idx[t] for t in TARGETS])
    ijk = np.argwhere(seed_vox)
    centre_ijk = ijk[np.argmin(((ijk - ijk.mean(axis=0)) ** 2).sum(axis=1))]  # a seed voxel near its centroid
    centre = (atlas.affine @ [*centre_ijk, 1])[:3]
    part = pd.read_csv(cohort["participants"], sep="\t")
    plant_slow_signal(cohort, seed_vox | targets, rng, sd=15.0, shared=True)
    bad = part.loc[part["diagnosis"] == "HC", "participant_id"].iloc[0]
    mpath = next((cohort["fmriprep"] / bad / "func").glob("*_desc-brain_mask.nii.gz"))
    m = nib.load(mpath)
    mask = np.asarray(m.dataobj).copy()
    from rviflow.measures.connectivity import sphere_mask

    mask[sphere_mask(centre, 12.0, mask.shape, m.affine)] = 0
    nib.Nifti1Image(mask, m.affine, m.header).to_filename(mpath)
    return [float(c) for c in centre], bad


@pytest.fixture(scope="module")
def fc_runs(tmp_path_factory):
    """8 synthetic subjects with seed coupling planted in MDD; a label seed and a sphere seed on the
    same region; per-scan and batch mode."""
    from conftest import MACHINERY_CONFIG, run_snakemake, write_config
    from rviflow.synth.cohort import write_cohort

    root = tmp_path_factory.mktemp("fc")
    cohort = write_cohort(root / "cohort", n_subjects=8, seed=12, n_sites=2, asl=False)
    centre, bad = _plant_coupling(cohort, np.random.default_rng(12))
    fc = {"enabled": True, "seeds": {"stg": {"label": SEED_REGION}, "ball": {"coordinates": centre}}}
    runs = {}
    for mode, extra in (("scan", {}), ("batch", {"batch_size": 4})):
        # no covariates: with 7 subjects, age + sex + site would leave 2 residual df for each d
        proc = run_snakemake(write_config(root / f"{mode}.yaml", cohort, root / mode, **MACHINERY_CONFIG, fc=fc,
                                          covariates=[], site_column="", **extra), root)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        runs[mode] = (proc, root / mode)
    return runs, cohort, bad


@pytest.mark.workflow
def test_planted_seed_coupling_is_recovered(fc_runs):
    runs, cohort, bad = fc_runs
    out = runs["scan"][1]
    eff = pd.read_csv(out / "group" / "effect_sizes.tsv", sep="\t")
    for m, own in (("fc_stg", None), ("fc_ball", SEED_REGION)):
        e = eff[eff["measure"] == m].set_index("region")
        assert len(e) == (82 if own is None else 83)  # a label seed's own region is left out
        others = e.drop(list(TARGETS) + ([own] if own else []))
        assert (e.loc[list(TARGETS), "d"] > 2).all(), e.loc[list(TARGETS), "d"]
        assert e.loc[list(TARGETS), "d"].min() > others["d"].quantile(0.95), others["d"].describe()
        assert (e.loc[list(TARGETS), "p"] < 0.05).all() and (others["p"] < 0.05).mean() < 0.15
    table = pd.read_csv(out / "group" / "parcels_fc_stg.tsv", sep="\t")
    assert bad not in set(table["participant_id"]) and len(table) == 7
    assert SEED_REGION not in table.columns
    # the per-scan matrix: 83 x 83, the label seed's row equal to its fc_stg row
    mats = sorted(out.rglob("*_desc-desikankilliany_connectivity.tsv"))
    assert len(mats) == 8
    good = next(p for p in mats if not p.name.startswith(bad) and p.stat().st_size)
    mat = pd.read_csv(good, sep="\t", index_col="region", na_values="n/a")
    assert mat.shape == (83, 83)
    np.testing.assert_allclose(mat.to_numpy(), mat.to_numpy().T, equal_nan=True)
    pid = good.name.split("_")[0]
    row = table.set_index("participant_id").loc[pid]
    np.testing.assert_allclose(mat.loc[SEED_REGION].drop(SEED_REGION).to_numpy(float),
                               row[mat.columns.drop(SEED_REGION)].to_numpy(float), atol=1e-4)
    side = json.loads(good.with_suffix(".json").read_text())
    assert side["status"] == "ok" and set(side["QC"]["seed_voxels"]) == {"stg", "ball"}


@pytest.mark.workflow
def test_a_seed_outside_one_brain_mask_excludes_that_subject_only(fc_runs):
    runs, _, bad = fc_runs
    proc, out = runs["scan"]
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t").fillna("")
    row = qc[(qc["participant_id"] == bad) & (qc["step"] == "fc")]
    assert list(row["status"]) == ["failed"], qc[qc["participant_id"] == bad]
    reason = row["reason"].iloc[0]
    # (the denoised series is a temporary .nii unless denoise.keep_denoised, issue #19)
    assert re.search(r"desc-denoised_bold\.nii(\.gz)?: seed ball", reason) and "no voxel inside the brain mask" in reason
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"rviflow fc: {bad}:")]
    assert lines and "seed ball" in lines[0]
    reho = pd.read_csv(out / "group" / "parcels_reho.tsv", sep="\t")
    assert bad in set(reho["participant_id"])  # its other measures are kept


@pytest.mark.workflow
def test_fc_in_report_and_methods(fc_runs):
    out = fc_runs[0]["scan"][1]
    html = (out / "report" / "rviflow_report.html").read_text()
    assert "Effect sizes: seed FC: stg" in html and "Effect sizes: seed FC: ball" in html
    assert "Seed-based functional connectivity was the Pearson correlation" in html
    assert f"stg (atlas region {SEED_REGION})" in html and "6 mm sphere at MNI" in html and "Biswal B" in html


@pytest.mark.workflow
def test_fc_batch_mode_equals_per_scan_mode(fc_runs):
    from conftest import assert_same_outputs, finished_jobs

    runs, _, _ = fc_runs
    proc, _ = runs["batch"]
    rules = [r for r, _ in finished_jobs(proc.stdout + proc.stderr)]
    # fc reads ReHo's denoised series: it runs inside reho_batch (one denoising per scan)
    assert rules.count("reho_batch") == 2 and not {"fc_batch", "fc", "denoise"} & set(rules)
    compared = assert_same_outputs(runs["scan"][1], runs["batch"][1])
    assert {"group/parcels_fc_stg.tsv", "group/parcels_fc_ball.tsv"} <= compared
    assert sum(f.endswith("_desc-desikankilliany_connectivity.tsv") for f in compared) == 8


@pytest.mark.workflow
@pytest.mark.parametrize("seed, message", [
    ({"x": {"label": "L_superiortemporl"}}, "config fc.seeds.x: label 'L_superiortemporl' is not in the atlas label "
                                            "table (similar: L_superiortemporal"),
    ({"x": {"file": "/nonexistent/seed.nii.gz"}}, "config fc.seeds.x: seed file /nonexistent/seed.nii.gz does not exist"),
    ({"PCC": {"coordinates": [0, -52, 26]}}, None),  # the schema: seed names are a-z, 0-9 (the measure fc_<name>)
])
def test_bad_seed_config_stops_before_any_job(cohort16, tmp_path, seed, message):
    from conftest import run_snakemake, write_config

    cfg = write_config(tmp_path / "config.yaml", cohort16, tmp_path / "out", fc={"enabled": True, "seeds": seed})
    proc = run_snakemake(cfg, tmp_path, "-n")
    assert proc.returncode != 0
    if message is None:
        assert "'PCC' does not match" in proc.stdout + proc.stderr, proc.stdout[-2000:]
    else:
        # Snakemake 9 prints a parse-time WorkflowError on stdout (stderr held it only through a
        # handler abagen's import used to add)
        assert f"rviflow: {message}" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-2000:]
    assert "Job stats" not in proc.stdout + proc.stderr and not (tmp_path / "out" / "group").exists()


def test_seed_file_on_another_grid_matches_nilearn_nearest(tmp_path):
    """A seed mask on a finer, shifted grid: our nearest-neighbour lookup equals nilearn's
    resample_to_img(interpolation='nearest') on the BOLD grid."""
    from nilearn.image import resample_to_img

    from rviflow.measures.connectivity import Seed, seed_voxels

    fine = np.array([[1.5, 0, 0, -31.2], [0, 1.5, 0, -29.1], [0, 0, 1.5, -16.4], [0, 0, 0, 1]])
    rng = np.random.default_rng(7)
    seed = (rng.random((44, 44, 22)) > 0.7).astype(np.uint8)
    path = tmp_path / "fine.nii.gz"
    nib.Nifti1Image(seed, fine).to_filename(path)
    ref = nib.Nifti1Image(np.zeros(SHAPE, np.uint8), AFFINE)
    ours = seed_voxels(Seed("s", "file", file=str(path)), np.zeros(SHAPE, int), ref)
    theirs = np.asarray(resample_to_img(nib.load(path), ref, interpolation="nearest", force_resample=True,
                                        copy_header=True).dataobj) > 0
    assert ours.sum() > 50
    np.testing.assert_array_equal(ours, theirs)


def test_region_series_same_in_either_memory_order():
    from rviflow.measures.connectivity import region_series

    rng = np.random.default_rng(9)
    data = rng.normal(size=(7, 6, 5, 12)).astype(np.float32)
    lab = rng.integers(0, 5, size=(7, 6, 5))
    valid = rng.random((7, 6, 5)) < 0.8
    ref = np.column_stack([data[(lab == i) & valid].mean(axis=0, dtype=np.float64) for i in (1, 2, 4)])
    for arr in (np.ascontiguousarray(data), np.asfortranarray(data)):
        got = region_series(arr, lab, valid, np.array([1, 2, 4, 9]))
        np.testing.assert_allclose(got[:, :3], ref, rtol=1e-6)
        assert np.isnan(got[:, 3]).all()  # label 9: no voxels


def test_radius_default_is_the_schema_default():
    import inspect

    from rviflow.io.config import schema_defaults

    sig = inspect.signature(compute_fc).parameters
    assert sig["radius_mm"].default == schema_defaults("fc")["radius_mm"]
    assert sig["min_regions"].default == schema_defaults("atlas")["min_regions"]
    assert sig["min_coverage"].default == schema_defaults("atlas")["min_coverage"]
    assert schema_defaults("fc")["enabled"] is False and schema_defaults("fc")["seeds"] == {}


def test_partial_coverage_follows_the_atlas_rules(tmp_path):
    """A slab covering regions 1 and half of 2: with min_regions 0.5 of 4 regions the scan fails
    (one line naming the file); lowered, region 2 (half covered) is n/a at min_coverage 0.6 and
    kept at 0.4, and equals the plain mean over its covered voxels."""
    lab, atlas, labels = _atlas(tmp_path)
    data, mask, bold, mpath = _scan(tmp_path, lab, n_t=60)
    slab = np.zeros(SHAPE, np.uint8)
    slab[:11] = 1  # x 0..10: all of region 1 (x 2..7), half of region 2 (x 8..13)
    nib.Nifti1Image(slab, AFFINE).to_filename(mpath)
    seeds = {"a": {"label": "ctx-a"}}
    kw = dict(seeds=seeds, radius_mm=6, atlas_image=atlas, atlas_labels=labels)
    with pytest.raises(InputError, match=r"desc-denoised_bold.nii.gz: the scan has signal in 2 of 4 atlas regions"):
        compute_fc(bold, mpath, _outputs(tmp_path, seeds), min_regions=0.75, **kw)
    out = _outputs(tmp_path, seeds)
    rec = compute_fc(bold, mpath, out, min_regions=0.0, min_coverage=0.6, **kw)
    assert rec["QC"]["covered_fraction"]["ctx-b"] == pytest.approx(0.5)
    assert np.isnan(pd.read_csv(out["parcels_a"], sep="\t", na_values="n/a").loc[0, "ctx-b"])
    compute_fc(bold, mpath, out, min_regions=0.0, min_coverage=0.4, **kw)
    row = pd.read_csv(out["parcels_a"], sep="\t", na_values="n/a")
    a = data[lab == 1].mean(axis=0, dtype=np.float64)
    b = data[(lab == 2) & (slab > 0)].mean(axis=0, dtype=np.float64)
    assert row.loc[0, "ctx-b"] == pytest.approx(np.arctanh(np.corrcoef(a, b)[0, 1]), abs=1e-5)
