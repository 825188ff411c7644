"""One subject's CBF map on the analysis grid, from BIDS-ASL or from a ready perfusion map.

The analysis grid is the template-space reference of the subject's BOLD (its fMRIPrep brain
mask), so CBF and ReHo are parcellated on the same grid. ASL already in template space (a
``space-<space>`` entity or the config) is quantified there; native-space ASL is quantified
natively and brought over by :mod:`rviflow.preprocess.register`. Ready maps (ASLPrep ``*_cbf.nii.gz`` in
absolute units, or SPECT regional CBF in relative units) are resampled to the grid. Every map is
also written normalised (÷ its mean in a reference mask: whole brain, grey matter or a
cerebellum mask) for relative-unit cohort statistics. Only the voxels the ASL (or the map)
really covers count: the coverage (field of view, M0 > 0) is carried onto the analysis grid with
the maps (normalised interpolation) and is the mask written beside them, so QC, the normalisation
reference and the parcels never average the zero fill outside a limited slab.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import nibabel as nib
import numpy as np

from rviflow.io.asl import companion, load_asl, m0_tr
from rviflow.measures.cbf.quantify import CbfOptions, LabelOrderError, cbf_qc, normalise, quantify
from rviflow.errors import InputError

REFERENCES = ("whole_brain", "grey_matter", "cerebellum")


def _on_grid(img: nib.Nifti1Image, reference: nib.Nifti1Image, interpolation: str) -> np.ndarray:
    """``img`` (3-D) on the reference grid (unchanged when the grids already match)."""
    if img.shape[:3] == reference.shape[:3] and np.allclose(img.affine, reference.affine, atol=1e-4):
        return np.asarray(img.dataobj, dtype=float)
    from nilearn.image import resample_to_img
    from nilearn.image.resampling import BoundingBoxError

    try:
        out = resample_to_img(img, reference, interpolation=interpolation, force_resample=True, copy_header=True)
    except BoundingBoxError:
        raise InputError("the image does not overlap the reference grid at all (is it in the atlas space?)",
                         path=getattr(img, "get_filename", lambda: None)()) from None
    return np.asarray(out.dataobj, dtype=float)


def _grey_matter(atlas_image: str | None, reference: nib.Nifti1Image) -> np.ndarray | None:
    """Grey matter on a grid: the atlas's labelled voxels (cortex + subcortical nuclei)."""
    if not atlas_image:
        return None
    return _on_grid(nib.load(atlas_image), reference, "nearest") > 0


def reference_mask(kind: str, brain: np.ndarray, gm: np.ndarray | None, grid: nib.Nifti1Image,
                   mask_path: str | None = None) -> np.ndarray:
    """The normalisation reference: whole brain, grey matter, or a given (cerebellum) mask."""
    if kind == "whole_brain":
        return brain
    if kind == "grey_matter":
        if gm is None:
            raise InputError("cbf.reference grey_matter needs an atlas")
        return brain & gm
    if not mask_path:
        raise InputError(f"cbf.reference {kind} needs cbf.reference_mask (a NIfTI mask in the analysis space)")
    return brain & (_on_grid(nib.load(mask_path), grid, "nearest") > 0)


def load_m0(m0_path: str | Path, asl_img: nib.Nifti1Image, subject: str | None = None) -> tuple[np.ndarray, dict]:
    """A separate M0 image (volumes averaged) on the ASL grid, and a record of what was done.

    An M0 on another grid (e.g. asl003: 2×2×5 mm M0 for an 8×4×6 mm ASL) is the same session in
    the same scanner frame, so its affine maps it onto the ASL grid: resampled (linear), recorded.
    """
    img = nib.load(str(m0_path))
    data = np.asarray(img.dataobj, dtype=float)
    if data.ndim == 4:
        data = data.mean(axis=3)
        img = nib.Nifti1Image(data, img.affine)
    if data.ndim != 3:
        raise InputError(f"M0 image has {data.ndim} dimensions, a 3-D (or 4-D) image is needed", subject, m0_path)
    grid = nib.Nifti1Image(np.zeros(asl_img.shape[:3], np.uint8), asl_img.affine)
    if data.shape == asl_img.shape[:3] and np.allclose(img.affine, asl_img.affine, atol=1e-3):
        return data, {}
    try:
        out = _on_grid(img, grid, "continuous")
    except InputError:
        raise InputError("the M0 image does not overlap the ASL field of view", subject, m0_path) from None
    zooms = [round(float(z), 3) for z in img.header.get_zooms()[:3]]
    return np.nan_to_num(out), dict(M0Resampled=f"M0 on a {'x'.join(map(str, zooms))} mm grid of shape "
                                                f"{list(data.shape)} resampled (linear) to the ASL grid")


def _to_reference(maps: dict, valid: np.ndarray, resample) -> tuple[dict, np.ndarray]:
    """Maps and their validity on the reference grid; ``resample`` takes and returns a 3-D array.

    Normalised interpolation: each map × validity and the validity are resampled and divided, so
    the zeros outside the ASL coverage are not blended into the edge voxels; a reference voxel
    is valid when at least half of it comes from covered ASL voxels (zero fill beyond the field of
    view after registration counts as uncovered).
    """
    w = resample(valid.astype(float))
    out_valid = w >= 0.5
    out = {}
    for k, v in maps.items():
        if v is None:
            out[k] = None
            continue
        num = resample(np.where(valid, v, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[k] = np.where(out_valid, num / np.where(out_valid, w, 1.0), 0.0)
    return out, out_valid


def cbf_from_asl(asl: str, reference: str, participant_id: str, options: CbfOptions, atlas_image: str | None = None,
                 in_template: bool = True, t1w: str | None = None, template_xfm: str | None = None) -> dict:
    """Quantify one BIDS-ASL series onto the grid of ``reference`` (a template-space brain mask).

    Returns a dict with ``cbf`` (3-D array, ml/100 g/min), ``att`` (array or None), ``brain``
    (bool array), ``valid`` (bool array: brain voxels the ASL covers, with data), ``gm`` (bool
    array or None), ``constants`` and ``qc``.
    """
    img, params, m0_path = load_asl(asl, participant_id)
    ref = nib.load(reference)
    data = np.asarray(img.dataobj, dtype=float)
    m0_data, m0_info = load_m0(m0_path, img, participant_id) if m0_path else (None, {})
    m0_rt = m0_tr(m0_path) if m0_path else None
    zooms = img.header.get_zooms()[:3]
    grid3 = nib.Nifti1Image(np.zeros(img.shape[:3], np.uint8), img.affine)
    if in_template:
        mask = _on_grid(ref, grid3, "nearest") > 0
        gm = _grey_matter(atlas_image, grid3)
    else:
        from nilearn.masking import compute_epi_mask

        ctx = np.asarray(params.context)
        pick = ctx == ("m0scan" if "m0scan" in ctx else "control")
        mean = m0_data
        if mean is None:
            mean = data[..., pick].mean(axis=3) if pick.any() else data.mean(axis=3)
        mask = np.asarray(compute_epi_mask(nib.Nifti1Image(mean, img.affine)).dataobj) > 0
        gm = None
    try:
        res = quantify(data, params, mask, zooms, m0_data, m0_rt, options, gm)
    except LabelOrderError as exc:
        raise InputError(exc.reason, participant_id, companion(asl, "aslcontext", ".tsv")) from None
    except InputError as exc:
        raise (InputError(exc.reason, participant_id, asl) if exc.path is None else exc) from None
    res.constants.update(m0_info)
    brain = np.asarray(ref.dataobj) > 0
    maps = {"cbf": res.cbf, "att": res.att}
    if in_template:
        maps, valid = _to_reference(maps, res.valid, lambda v: _on_grid(nib.Nifti1Image(v, img.affine), ref,
                                                                           "continuous"))
    else:
        from rviflow.preprocess.register import rigid_register, to_template

        if not t1w:
            raise InputError("native-space ASL needs the fMRIPrep desc-preproc_T1w", participant_id, asl)
        rigid = rigid_register(nib.Nifti1Image(mean, img.affine), nib.load(t1w))
        maps, valid = _to_reference(maps, res.valid, lambda v: np.asarray(to_template(
            nib.Nifti1Image(v, img.affine), rigid, template_xfm, ref).dataobj, dtype=float))
        res.constants.update(Registration=dict(method="ANTsPy rigid (Mattes MI) to desc-preproc_T1w, then "
                                               "the anat-to-template transform (nitransforms)",
                                               rigid_T1w_to_ASL=rigid.round(6).tolist(), template_xfm=template_xfm))
    res.constants.update(Options=asdict(options))
    valid &= brain
    att = None if maps["att"] is None else np.where(valid, maps["att"], 0.0)
    cbf = np.where(valid, maps["cbf"], 0.0)
    return dict(cbf=cbf, att=att, brain=brain, valid=valid, gm=_grey_matter(atlas_image, ref),
                constants=res.constants, qc=res.qc)


def cbf_from_map(path: str, reference: str, source: str, atlas_image: str | None = None) -> dict:
    """A ready perfusion map (ASLPrep CBF, absolute; SPECT, relative) on the grid of ``reference``.

    ``valid``: brain voxels inside the map's field of view with a finite, non-zero value (ASLPrep
    writes 0 outside its coverage).
    """
    img = nib.load(path)
    if img.ndim == 4 and img.shape[3] == 1:
        img = img.slicer[..., 0]
    if img.ndim != 3:
        raise InputError(f"perfusion map has {img.ndim} dimensions, a 3-D map is needed", path=path)
    ref = nib.load(reference)
    brain = np.asarray(ref.dataobj) > 0
    raw = np.asarray(img.dataobj, dtype=float)
    has = np.isfinite(raw) & (raw != 0)
    maps, valid = _to_reference({"cbf": np.nan_to_num(raw)}, has,
                                lambda v: _on_grid(nib.Nifti1Image(v, img.affine), ref, "continuous"))
    valid &= brain
    units = "ml/100g/min" if source == "aslprep" else "relative (SPECT counts)"
    return dict(cbf=np.where(valid, maps["cbf"], 0.0), att=None, brain=brain, valid=valid,
                gm=_grey_matter(atlas_image, ref), constants=dict(Source=source, Units=units), qc={})


def finish(result: dict, reference_kind: str, reference_mask_path: str | None, grid: nib.Nifti1Image) -> dict:
    """Add the normalised map and the QC numbers (mean GM CBF, fraction negative, spatial CoV, coverage).

    The normalisation reference and every QC number use only the voxels with data
    (``result["valid"]``): a voxel outside the ASL coverage is not a zero CBF.
    """
    valid = result.get("valid", result["brain"]) & result["brain"]
    ref = reference_mask(reference_kind, result["brain"], result["gm"], grid, reference_mask_path) & valid
    rel, ref_mean = normalise(result["cbf"], ref)
    result["rel"] = np.where(valid, rel, 0.0)
    result["valid"] = valid
    result["qc"] = {**cbf_qc(result["cbf"], result["brain"], result["gm"], valid), **result["qc"]}
    result["constants"].update(NormalisationReference=reference_kind, NormalisationReferenceMean=round(ref_mean, 4),
                               NormalisationReferenceVoxels=int(ref.sum()))
    return result


def quantify_file(asl: str, m0: str | None = None, mask: str | None = None, options: CbfOptions = CbfOptions(),
                  m0_tr_s: float | None = None):
    """CBF of one BIDS-ASL file in its own space (``rviflow cbf``): (CbfResult, affine, brain mask).

    Sidecars are found by BIDS naming; ``m0`` (a separate M0 image, on any grid of the same
    session) overrides the sidecar's M0Type; its repetition time is ``m0_tr_s``, else read from
    the JSON beside it, else unknown (the short-TR correction is then skipped and that is
    recorded in ``constants['M0TRCorrection']``). Without ``mask``, the brain is nilearn's EPI mask
    of the M0 (or mean control) image. Every InputError names the file it is about.
    """
    try:
        return _quantify_file(asl, m0, mask, options, m0_tr_s)
    except LabelOrderError as exc:
        raise InputError(exc.reason, exc.subject, companion(asl, "aslcontext", ".tsv")) from None
    except InputError as exc:
        if exc.path is None:
            raise InputError(exc.reason, exc.subject, asl) from None
        raise


def _quantify_file(asl, m0, mask, options, m0_tr_s):
    img, params, m0_path = load_asl(asl, need_m0scan=not m0)
    data = np.asarray(img.dataobj, dtype=float)
    if m0:
        params.m0_type, m0_path = "Separate", m0
    m0_data, m0_info = load_m0(m0_path, img) if m0_path else (None, {})
    if mask:
        brain = np.asarray(nib.load(mask).dataobj) > 0
        if brain.shape != data.shape[:3]:
            raise InputError(f"mask grid {brain.shape} does not match the ASL grid {data.shape[:3]}", path=mask)
    else:
        from nilearn.masking import compute_epi_mask

        ctx = np.asarray(params.context)
        if m0_data is not None:
            mean = m0_data
        else:
            pick = np.isin(ctx, ("m0scan", "control"))
            mean = data[..., pick].mean(axis=3) if pick.any() else np.abs(data).mean(axis=3)
        brain = np.asarray(compute_epi_mask(nib.Nifti1Image(mean, img.affine)).dataobj) > 0
    tr = m0_tr_s if m0_tr_s is not None else (m0_tr(m0_path) if m0_path else None)
    res = quantify(data, params, brain, img.header.get_zooms()[:3], m0_data, tr, options)
    res.constants.update(m0_info)
    res.qc.update(cbf_qc(res.cbf, brain, None, res.valid))
    res.constants.update(Options=asdict(options))
    return res, img.affine, brain
