"""nipype interfaces: thin adapters over rviflow's pure functions.

Each writes its outputs where it is told (absolute paths under the derivatives tree) plus a
JSON sidecar with the parameters, QC numbers and software versions; nipype keeps its own
provenance (inputs hash, runtime report) in the node's working directory.
"""

from __future__ import annotations

import os

os.environ.setdefault("NIPYPE_NO_ET", "1")  # no update check over the network

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from nipype.interfaces.base import (  # noqa: E402
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from rviflow.io.bids import save_nifti, software_versions, write_json, write_tsv  # noqa: E402


def _save_maps(maps, mask_path: str, mask: np.ndarray, affine: np.ndarray, header) -> None:
    """Save (path, 3-D array) maps as float32 and their voxel mask as uint8, atomically."""
    for path, arr in maps:
        save_nifti(nib.Nifti1Image(arr.astype(np.float32), affine, header), path)
    save_nifti(nib.Nifti1Image(mask.astype(np.uint8), affine), mask_path)


def _sidecar(path: str) -> str:
    """The JSON beside a .nii.gz, .nii (an uncompressed temporary series) or .tsv output."""
    for ext in (".nii.gz", ".nii", ".tsv"):
        if path.endswith(ext):
            return path[: -len(ext)] + ".json"
    return path


class _DenoiseInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="fMRIPrep desc-preproc BOLD")
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the BOLD grid")
    # the config's denoise section, every key given (defaults live in the config schema only)
    strategy = traits.List(traits.Str, mandatory=True)
    motion = traits.Str(mandatory=True)
    wm_csf = traits.Str(mandatory=True)
    global_signal = traits.Str(mandatory=True)
    scrub = traits.Bool(mandatory=True)
    fd_threshold = traits.Float(mandatory=True)
    std_dvars_threshold = traits.Float(mandatory=True)
    scrub_min_segment = traits.Int(mandatory=True)
    high_pass = traits.Either(None, traits.Float, mandatory=True)
    low_pass = traits.Either(None, traits.Float, mandatory=True)
    min_timepoints = traits.Int(mandatory=True)
    out_file = traits.Str(mandatory=True, desc="output path of the denoised BOLD")
    threads = traits.Int(1, usedefault=True, desc="threads of the cleaning product (same result whatever the count)")
    in_memory = traits.Bool(False, usedefault=True, desc="hold the series in this process under out_file "
                            "(rviflow.io.nifti.hold_series) instead of writing it: a fused chain's intermediate")


class _FileWithSidecar(TraitedSpec):
    """Outputs of a step writing one file and its JSON sidecar (denoise, parcellate)."""

    out_file = traits.Str(desc="the written file (denoise with in_memory: the path its series is held under)")
    out_json = File(exists=True)


class DenoiseBold(SimpleInterface):
    """Confound regression + band-pass (:func:`rviflow.preprocess.denoise.denoise_bold`)."""

    input_spec = _DenoiseInputSpec
    output_spec = _FileWithSidecar

    def _run_interface(self, runtime):
        from rviflow.preprocess.denoise import denoise_bold

        i = self.inputs
        params = dict(strategy=list(i.strategy), motion=i.motion, wm_csf=i.wm_csf, global_signal=i.global_signal,
                      scrub=i.scrub, fd_threshold=i.fd_threshold, std_dvars_threshold=i.std_dvars_threshold,
                      scrub_min_segment=i.scrub_min_segment, high_pass=i.high_pass, low_pass=i.low_pass,
                      min_timepoints=i.min_timepoints)
        img, qc = denoise_bold(i.bold_file, i.mask_file, threads=int(i.threads), **params)
        if i.in_memory:
            from rviflow.io.nifti import hold_series

            hold_series(i.out_file, img)
        else:
            save_nifti(img, i.out_file)
        side = _sidecar(i.out_file)
        write_json(side, dict(status="ok", Sources=[i.bold_file], RepetitionTime=qc["tr_s"],
                              Parameters=params, QC=qc, SoftwareVersions=software_versions()))
        self._results.update(out_file=i.out_file, out_json=side)
        return runtime


class _ReHoInputSpec(BaseInterfaceInputSpec):
    in_file = traits.Str(mandatory=True, desc="4-D time series (a file, or a series a fused chain holds in memory under that path: rviflow.io.nifti.hold_series)")
    mask_file = File(exists=True, mandatory=True, desc="brain mask")
    # the config's reho section (defaults in the config schema only)
    neighbourhood = traits.Enum(27, 19, 7, mandatory=True)
    tie_correction = traits.Bool(mandatory=True)
    smoothing_fwhm = traits.Float(mandatory=True, desc="FWHM (mm) applied to mReHo/zReHo; 0 = none")
    out_reho = traits.Str(mandatory=True)
    out_mreho = traits.Str(mandatory=True)
    out_zreho = traits.Str(mandatory=True)
    out_mask = traits.Str(mandatory=True, desc="voxels with ReHo (mask minus zero-variance voxels)")
    threads = traits.Int(mandatory=True, desc="threads of reho_map (the rule's threads:)")


class _ReHoOutputSpec(TraitedSpec):
    out_reho = File(exists=True)
    out_mreho = File(exists=True)
    out_zreho = File(exists=True)
    out_mask = File(exists=True)
    out_json = File(exists=True)


class ComputeReHo(SimpleInterface):
    """Kendall's W ReHo (:func:`rviflow.measures.reho.reho_map`) and its mReHo / zReHo."""

    input_spec = _ReHoInputSpec
    output_spec = _ReHoOutputSpec

    def _run_interface(self, runtime):
        from rviflow.io.nifti import load_4d, load_mask, read_data
        from rviflow.measures.normalise import normalise_in_mask
        from rviflow.measures.reho import reho_map

        i = self.inputs
        img = load_4d(i.in_file)
        mask = load_mask(i.mask_file, img.shape, img.affine)
        w, used = reho_map(read_data(img, i.in_file), mask, int(i.neighbourhood), i.tie_correction,
                           n_threads=int(i.threads))
        m, z = normalise_in_mask(w, used, "ReHo")
        if i.smoothing_fwhm > 0:
            from nilearn.image import smooth_img

            m, z = (np.asarray(smooth_img(nib.Nifti1Image(a, img.affine), i.smoothing_fwhm).dataobj) * used
                    for a in (m, z))
        hdr = img.header.copy()
        hdr.set_data_shape(img.shape[:3])
        hdr.set_data_dtype(np.float32)
        _save_maps([(i.out_reho, w), (i.out_mreho, m), (i.out_zreho, z)], i.out_mask, used, img.affine, hdr)
        qc = dict(n_voxels_mask=int(mask.sum()), n_voxels_zero_variance=int(mask.sum() - used.sum()),
                  mean_reho=float(w[used].mean()), n_timepoints=int(img.shape[3]))
        side = _sidecar(i.out_reho)
        write_json(side, dict(status="ok", Sources=[i.in_file], Measure="ReHo (Kendall's W)",
                              Parameters=dict(neighbourhood=int(i.neighbourhood), tie_correction=i.tie_correction,
                                              smoothing_fwhm_mreho_zreho=i.smoothing_fwhm),
                              QC=qc, SoftwareVersions=software_versions()))
        self._results.update(out_reho=i.out_reho, out_mreho=i.out_mreho, out_zreho=i.out_zreho,
                             out_mask=i.out_mask, out_json=side)
        return runtime


class _ParcellateInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="3-D map")
    valid_mask = File(exists=True, desc="voxels with data")
    atlas_image = File(exists=True, mandatory=True)
    atlas_labels = File(exists=True, mandatory=True)
    measure = traits.Str(mandatory=True)
    participant_id = traits.Str(mandatory=True)
    session = traits.Str("", usedefault=True)
    out_file = traits.Str(mandatory=True, desc="output TSV: one row, a column per region")
    brain_mask = File(exists=True, desc="brain mask (CBF): a region's coverage is then of its brain voxels")
    min_coverage = traits.Float(mandatory=True, desc="fewest covered fraction of a region; below it n/a")
    min_regions = traits.Float(mandatory=True, desc="fewest fraction of atlas regions with data (without brain_mask)")


class ParcellateMap(SimpleInterface):
    """Regional means (:func:`rviflow.preprocess.parcellate.parcellate_image`) as a one-row TSV."""

    input_spec = _ParcellateInputSpec
    output_spec = _FileWithSidecar

    def _run_interface(self, runtime):
        import pandas as pd

        from rviflow.preprocess.parcellate import parcellate_image

        i = self.inputs
        valid = i.valid_mask if i.valid_mask else None
        if i.brain_mask and valid:  # limited field of view (CBF): covered fraction of the brain's voxels
            from rviflow.preprocess.parcellate import parcellate_covered

            means, counts, covered = parcellate_covered(i.in_file, i.atlas_image, i.atlas_labels, valid,
                                                        i.brain_mask, i.min_coverage)
        else:  # BOLD measures: covered fraction of the region's atlas voxels
            means, counts, covered = parcellate_image(i.in_file, i.atlas_image, i.atlas_labels, valid,
                                                      min_regions=i.min_regions, min_coverage=i.min_coverage)
        coverage = dict(min_coverage=i.min_coverage, covered_fraction=covered.round(4).to_dict(),
                        regions_below_coverage=[str(r) for r in covered.index[covered < i.min_coverage]],
                        regions_with_data=int(means.notna().sum()))
        row = pd.DataFrame([means.to_numpy()], columns=means.index)
        row.insert(0, "session", i.session)
        row.insert(0, "participant_id", i.participant_id)
        write_tsv(row, i.out_file)
        empty = [str(r) for r in counts.index[counts.to_numpy() == 0]]
        side = _sidecar(i.out_file)
        write_json(side, dict(status="ok", Sources=[i.in_file], Measure=i.measure, Atlas=i.atlas_image,
                              QC=dict(n_regions=int(len(means)), empty_regions=empty,
                                      voxels_per_region=counts.astype(int).to_dict(), **coverage),
                              SoftwareVersions=software_versions()))
        self._results.update(out_file=i.out_file, out_json=side)
        return runtime


class _CBFInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="BIDS *_asl.nii.gz, or a ready perfusion map")
    source = traits.Enum("asl", "aslprep", "spect", mandatory=True, desc="config cbf.source")
    reference_mask = File(exists=True, mandatory=True, desc="template-space brain mask: the output grid")
    atlas_image = File(exists=True, desc="atlas on any grid: its labelled voxels are grey matter")
    participant_id = traits.Str(mandatory=True)
    in_template = traits.Bool(mandatory=True, desc="ASL already in the template space")
    t1w = File(exists=True, desc="fMRIPrep desc-preproc_T1w (native-space ASL)")
    template_xfm = File(exists=True, desc="fMRIPrep from-T1w_to-<space>_mode-image_xfm.h5 (native-space ASL)")
    options = traits.Dict(mandatory=True, desc="rviflow.measures.cbf.quantify.CbfOptions fields (cbf_options)")
    reference = traits.Enum("whole_brain", "grey_matter", "cerebellum", mandatory=True, desc="config cbf.reference")
    reference_mask_file = File(exists=True, desc="cerebellum (or other) normalisation mask in template space")
    out_cbf = traits.Str(mandatory=True)
    out_rel = traits.Str(mandatory=True, desc="CBF / mean in the reference mask")
    out_mask = traits.Str(mandatory=True)
    out_att = traits.Str(desc="arterial transit time map (written for multi-PLD ASL)")


class _CBFOutputSpec(TraitedSpec):
    out_cbf = File(exists=True)
    out_rel = File(exists=True)
    out_mask = File(exists=True)
    out_json = File(exists=True)


class QuantifyCBF(SimpleInterface):
    """CBF on the template grid (:mod:`rviflow.measures.cbf.perfusion`, :mod:`rviflow.measures.cbf.quantify`), normalised map, QC."""

    input_spec = _CBFInputSpec
    output_spec = _CBFOutputSpec

    def _run_interface(self, runtime):
        from rviflow.measures.cbf.quantify import CbfOptions
        from rviflow.measures.cbf.perfusion import cbf_from_asl, cbf_from_map, finish

        i = self.inputs
        atlas = i.atlas_image or None
        if i.source == "asl":
            opts = dict(i.options)
            if "att_range" in opts:
                opts["att_range"] = tuple(opts["att_range"])
            res = cbf_from_asl(i.in_file, i.reference_mask, i.participant_id, CbfOptions(**opts), atlas,
                               i.in_template, i.t1w or None, i.template_xfm or None)
        else:
            res = cbf_from_map(i.in_file, i.reference_mask, i.source, atlas)
        ref = nib.load(i.reference_mask)
        res = finish(res, i.reference, i.reference_mask_file or None, ref)
        hdr = ref.header.copy()
        hdr.set_data_dtype(np.float32)
        outputs = [(i.out_cbf, res["cbf"]), (i.out_rel, res["rel"])]
        if res["att"] is not None and i.out_att:
            outputs.append((i.out_att, res["att"]))
        _save_maps(outputs, i.out_mask, res["valid"], ref.affine, hdr)
        side = _sidecar(i.out_cbf)
        write_json(side, dict(status="ok", Sources=[i.in_file], Measure="CBF", Units=res["constants"].get(
            "Units", "ml/100g/min"), Constants=res["constants"], QC=res["qc"],
            ATTMap=i.out_att if res["att"] is not None else None, RelativeMap=i.out_rel,
            SoftwareVersions=software_versions()))
        self._results.update(out_cbf=i.out_cbf, out_rel=i.out_rel, out_mask=i.out_mask, out_json=side)
        return runtime


class _MeasureInputSpec(BaseInterfaceInputSpec):
    measure = traits.Str(mandatory=True, desc="a measure of rviflow.measures.registry.REGISTRY")
    in_file = traits.Str(mandatory=True, desc="4-D time series (a file, or a series a fused chain holds "
                         "in memory under that path: rviflow.io.nifti.hold_series)")
    mask_file = File(exists=True, mandatory=True, desc="brain mask")
    outputs = traits.Dict(traits.Str, traits.Str, mandatory=True, desc="output key -> path (the spec's outputs)")
    options = traits.Dict(mandatory=True, desc="keyword arguments of the measure's compute function")
    threads = traits.Int(mandatory=True)


class _MeasureOutputSpec(TraitedSpec):
    outputs = traits.Dict(traits.Str, traits.Str)


class ComputeMeasure(SimpleInterface):
    """Any registered measure's maps: its ``compute`` function (rviflow.measures.registry) writes the maps
    and returns its parameters and QC numbers; this adapter writes the sidecar."""

    input_spec = _MeasureInputSpec
    output_spec = _MeasureOutputSpec

    def _run_interface(self, runtime):
        from rviflow.measures.registry import REGISTRY, resolve

        i = self.inputs
        spec = REGISTRY[i.measure]
        outputs = dict(i.outputs)
        record = resolve(spec.compute)(i.in_file, i.mask_file, outputs, threads=int(i.threads), **dict(i.options))
        write_json(outputs["json"], dict(status="ok", Sources=[i.in_file], Measure=spec.title, **record,
                                         SoftwareVersions=software_versions()))
        self._results.update(outputs=outputs)
        return runtime
