"""Native-space ASL to the analysis template: ANTsPy rigid to the T1w, then fMRIPrep's transform.

The mean M0 / control image is registered rigidly (6 parameters, Mattes mutual information) to
the subject's fMRIPrep ``desc-preproc_T1w`` with ANTsPy (PyPI ``antspyx``, which carries ANTs;
the ANTs command-line tools are not needed). The CBF map is then resampled once, through the
chain template → T1w (fMRIPrep's ``from-T1w_to-<space>_mode-image_xfm.h5``, read by nitransforms)
→ ASL (the rigid transform), onto the template-space reference grid (the BOLD's brain mask), so
CBF lands on the same grid as ReHo.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from rviflow.errors import InputError


def rigid_register(moving: nib.Nifti1Image, fixed: nib.Nifti1Image, seed: int = 1) -> np.ndarray:
    """Rigid transform aligning ``moving`` to ``fixed`` with ANTsPy.

    Returns
    -------
    (4, 4) array in world (RAS, mm) coordinates mapping a point of the fixed image to the
    corresponding point of the moving image (the resampling, "pull" direction, as ITK/ANTs and
    nitransforms use it): ``moving_xyz = M @ fixed_xyz``.
    """
    import ants
    import nitransforms as nt

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, img in (("fixed", fixed), ("moving", moving)):
            p = Path(tmp) / f"{name}.nii.gz"
            nib.save(nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine), p)
            paths.append(str(p))
        f, m = (ants.image_read(p) for p in paths)
        reg = ants.registration(f, m, type_of_transform="Rigid", outprefix=str(Path(tmp) / "rigid_"),
                                random_seed=seed, aff_metric="mattes")
        mat = reg["fwdtransforms"][0]
        return np.asarray(nt.linear.load(mat, fmt="itk").matrix, dtype=float)


def load_template_transform(path: str | Path):
    """fMRIPrep's anat → template transform (ITK .h5 composite, or an ITK affine .mat / .txt)."""
    import nitransforms as nt

    path = Path(path)
    if not path.exists():
        raise InputError("anat-to-template transform not found", path=path)
    if path.suffix == ".h5":
        return nt.manip.load(str(path), fmt="itk")
    return nt.linear.load(str(path), fmt="itk")


def to_template(img: nib.Nifti1Image, rigid: np.ndarray, template_xfm: str | Path | None,
                reference: nib.Nifti1Image, order: int = 1) -> nib.Nifti1Image:
    """Resample a native-space map onto the template reference grid in one interpolation.

    ``rigid`` maps T1w points to ASL points (:func:`rigid_register` with the T1w fixed);
    ``template_xfm`` maps template points to T1w points (fMRIPrep's from-T1w_to-<space> file);
    None = the T1w already is the template space.
    """
    import nitransforms as nt

    steps = [nt.linear.Affine(rigid)]
    if template_xfm:
        steps.insert(0, load_template_transform(template_xfm))
    chain = nt.manip.TransformChain(steps) if len(steps) > 1 else steps[0]
    out = nt.resampling.apply(chain, img, reference=reference, order=order, mode="constant", cval=0.0)
    return nib.Nifti1Image(np.asarray(out.dataobj, dtype=np.float32), reference.affine)


def rigid_matrix(angles_deg: tuple[float, float, float], shift_mm: tuple[float, float, float]) -> np.ndarray:
    """4 × 4 rigid transform: rotations about x, y, z (degrees, applied in that order), then a shift."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = rz @ ry @ rx
    out[:3, 3] = shift_mm
    return out
