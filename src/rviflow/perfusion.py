"""One subject's CBF map on the analysis grid, from BIDS-ASL or from a ready perfusion map.

The analysis grid is the template-space reference of the subject's BOLD (its fMRIPrep brain
mask), so CBF and ReHo are parcellated on the same grid. ASL already in template space (a
``space-<space>`` entity or the config) is quantified there; native-space ASL is quantified
natively and brought over by :mod:`rviflow.register`. Ready maps (ASLPrep ``*_cbf.nii.gz`` in
absolute units, or SPECT regional CBF in relative units) are resampled to the grid. Every map is
also written normalised (÷ its mean in a reference mask: whole brain, grey matter or a
cerebellum mask) for relative-unit cohort statistics.
"""

from __future__ import annotations

from dataclasses import asdict

import nibabel as nib
import numpy as np

from .asl_io import companion, load_asl, m0_tr
from .cbf import CbfOptions, cbf_qc, normalise, quantify
from .errors import InputError

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


def cbf_from_asl(asl: str, reference: str, participant_id: str, options: CbfOptions, atlas_image: str | None = None,
                 in_template: bool = True, t1w: str | None = None, template_xfm: str | None = None) -> dict:
    """Quantify one BIDS-ASL series onto the grid of ``reference`` (a template-space brain mask).

    Returns a dict with ``cbf`` (3-D array, ml/100 g/min), ``att`` (array or None), ``brain``
    (bool array), ``gm`` (bool array or None), ``constants`` and ``qc``.
    """
    img, params, m0_path = load_asl(asl, participant_id)
    ref = nib.load(reference)
    data = np.asarray(img.dataobj, dtype=float)
    m0_data = np.asarray(nib.load(str(m0_path)).dataobj, dtype=float) if m0_path else None
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
        mean = m0_data.mean(axis=3) if m0_data is not None and m0_data.ndim == 4 else m0_data
        if mean is None:
            mean = data[..., pick].mean(axis=3) if pick.any() else data.mean(axis=3)
        mask = np.asarray(compute_epi_mask(nib.Nifti1Image(mean, img.affine)).dataobj) > 0
        gm = None
    try:
        res = quantify(data, params, mask, zooms, m0_data, m0_rt, options, gm)
    except InputError as exc:
        raise (InputError(exc.reason, participant_id, asl) if exc.path is None else exc) from None
    brain = np.asarray(ref.dataobj) > 0
    maps = {"cbf": res.cbf, "att": res.att}
    if in_template:
        maps = {k: (_on_grid(nib.Nifti1Image(v, img.affine), ref, "continuous") if v is not None else None)
                for k, v in maps.items()}
    else:
        from .register import rigid_register, to_template

        if not t1w:
            raise InputError("native-space ASL needs the fMRIPrep desc-preproc_T1w", participant_id, asl)
        rigid = rigid_register(nib.Nifti1Image(mean, img.affine), nib.load(t1w))
        maps = {k: (np.asarray(to_template(nib.Nifti1Image(v, img.affine), rigid, template_xfm, ref).dataobj,
                               dtype=float) if v is not None else None) for k, v in maps.items()}
        res.constants.update(Registration=dict(method="ANTsPy rigid (Mattes MI) to desc-preproc_T1w, then "
                                               "the anat-to-template transform (nitransforms)",
                                               rigid_T1w_to_ASL=rigid.round(6).tolist(), template_xfm=template_xfm))
    res.constants.update(Options=asdict(options))
    att = None if maps["att"] is None else np.where(brain, maps["att"], 0.0)
    cbf = np.where(brain, maps["cbf"], 0.0)
    check_mean_cbf(cbf, brain, asl, participant_id, params.context)
    return dict(cbf=cbf, att=att,
                brain=brain, gm=_grey_matter(atlas_image, ref), constants=res.constants, qc=res.qc)


def check_mean_cbf(cbf: np.ndarray, brain: np.ndarray, asl: str, subject: str | None, context: list[str]) -> None:
    """Refuse a CBF map (ml/100 g/min) whose mean in the brain mask is negative.

    Perfusion is never negative on average: ΔM = control − label came out with the wrong sign,
    almost always because label and control are swapped in the series' aslcontext.tsv.
    """
    mean = float(cbf[brain].mean()) if brain.any() else 0.0
    if mean >= 0:
        return
    hint = ("label and control look swapped: check the order of volume_type" if {"control", "label"} <= set(context)
            else "deltam / cbf volumes must be control - label: check their sign")
    raise InputError(f"mean CBF in the brain is {mean:.1f} ml/100 g/min (negative): {hint}", subject,
                     companion(asl, "aslcontext", ".tsv"))


def cbf_from_map(path: str, reference: str, source: str, atlas_image: str | None = None) -> dict:
    """A ready perfusion map (ASLPrep CBF, absolute; SPECT, relative) on the grid of ``reference``."""
    img = nib.load(path)
    if img.ndim == 4 and img.shape[3] == 1:
        img = img.slicer[..., 0]
    if img.ndim != 3:
        raise InputError(f"perfusion map has {img.ndim} dimensions, a 3-D map is needed", path=path)
    ref = nib.load(reference)
    brain = np.asarray(ref.dataobj) > 0
    cbf = np.nan_to_num(_on_grid(img, ref, "continuous"))
    units = "ml/100g/min" if source == "aslprep" else "relative (SPECT counts)"
    return dict(cbf=np.where(brain, cbf, 0.0), att=None, brain=brain, gm=_grey_matter(atlas_image, ref),
                constants=dict(Source=source, Units=units), qc={})


def finish(result: dict, reference_kind: str, reference_mask_path: str | None, grid: nib.Nifti1Image) -> dict:
    """Add the normalised map and the QC numbers (mean GM CBF, fraction negative, spatial CoV)."""
    ref = reference_mask(reference_kind, result["brain"], result["gm"], grid, reference_mask_path)
    rel, ref_mean = normalise(result["cbf"], ref)
    result["rel"] = np.where(result["brain"], rel, 0.0)
    result["qc"] = {**cbf_qc(result["cbf"], result["brain"], result["gm"]), **result["qc"]}
    result["constants"].update(NormalisationReference=reference_kind, NormalisationReferenceMean=round(ref_mean, 4))
    return result


def quantify_file(asl: str, m0: str | None = None, mask: str | None = None, options: CbfOptions = CbfOptions()):
    """CBF of one BIDS-ASL file in its own space (``rviflow cbf``): (CbfResult, affine, brain mask).

    Sidecars are found by BIDS naming; ``m0`` (a separate M0 image) overrides the sidecar's M0Type.
    Without ``mask``, the brain is nilearn's EPI mask of the M0 (or mean control) image.
    """
    img, params, m0_path = load_asl(asl, need_m0scan=not m0)
    data = np.asarray(img.dataobj, dtype=float)
    if m0:
        params.m0_type, m0_path = "Separate", m0
    m0_data = np.asarray(nib.load(str(m0_path)).dataobj, dtype=float) if m0_path else None
    if m0_data is not None and m0_data.shape[:3] != data.shape[:3]:
        raise InputError(f"M0 grid {m0_data.shape[:3]} does not match the ASL grid {data.shape[:3]}", path=m0_path)
    if mask:
        brain = np.asarray(nib.load(mask).dataobj) > 0
        if brain.shape != data.shape[:3]:
            raise InputError(f"mask grid {brain.shape} does not match the ASL grid {data.shape[:3]}", path=mask)
    else:
        from nilearn.masking import compute_epi_mask

        ctx = np.asarray(params.context)
        if m0_data is not None:
            mean = m0_data.mean(axis=3) if m0_data.ndim == 4 else m0_data
        else:
            pick = np.isin(ctx, ("m0scan", "control"))
            mean = data[..., pick].mean(axis=3) if pick.any() else np.abs(data).mean(axis=3)
        brain = np.asarray(compute_epi_mask(nib.Nifti1Image(mean, img.affine)).dataobj) > 0
    res = quantify(data, params, brain, img.header.get_zooms()[:3], m0_data, m0_tr(m0_path) if m0_path else None,
                   options)
    check_mean_cbf(res.cbf, brain, asl, None, params.context)
    res.qc.update(cbf_qc(res.cbf, brain))
    res.constants.update(Options=asdict(options))
    return res, img.affine, brain
