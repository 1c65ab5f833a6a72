"""Checks of a scan before the network sees it: refusals (a distorted field, not a head) and
the input quality flags a report carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hemato.data.readers.errors import InputError
from hemato.data.readers.geometry import nifti_affine
from hemato.data.readers.scan import Scan
from hemato.engine import Contract
from hemato.scan_checks import intensity_flags, intensity_profile, not_a_head


def input_qc(
    scan: Scan, min_slices: int = 10, trained_spacing_mm: float = 5.0, profile: dict[str, Any] | None = None
) -> list[str]:
    """Input quality flags (the model is not refused, the reader is told): few slices, a
    slice spacing far from the training data's (ct-ich: 5 mm), a non-square slice field
    (:func:`field_stretch`; past :data:`MAX_FIELD_STRETCH` it is refused), intensities or
    noise outside the training scans' span (:func:`hemato.scan_checks.intensity_flags` of
    ``profile``, computed when not given)."""
    flags = []
    z = scan.image.shape[0]
    if z < min_slices:
        flags.append(f"only {z} slices: the scan may not cover the whole head")
    if scan.thickness_mm and not 0.5 * trained_spacing_mm <= scan.thickness_mm <= 2 * trained_spacing_mm:
        flags.append(
            f"slice spacing {scan.thickness_mm:g} mm is outside the range the model was trained on (~{trained_spacing_mm:g} mm)"
        )
    field, pixels = field_stretch(scan.image.shape[1:], scan.spacing_mm)
    if field > FLAG_STRETCH:
        flags.append(
            f"the slice field is {field:.2f}:1 (non-square pixels or grid): the network, trained on square slices, sees the head stretched {100 * (field - 1):.0f} %"
        )
    if pixels > FLAG_STRETCH:
        flags.append(f"non-square pixels ({pixels:.2f}:1): the network was trained on square pixels")
    flags += intensity_flags(profile if profile is not None else intensity_profile(scan.image))
    return flags


MAX_FIELD_STRETCH = 1.5  # beyond this the network would see a head squashed past recognition: refused
MAX_PIXEL_ASPECT = 2.0  # beyond this one in-plane axis is too coarse (a reslice of another plane): refused
FLAG_STRETCH = 1.05  # beyond this (field or pixels) the report flags it


def field_stretch(shape_hw: tuple[int, int], spacing_mm: tuple[float, float] | None) -> tuple[float, float]:
    """``(field, pixels)``: how much the network's square input stretches a slice of
    ``shape_hw`` pixels at ``spacing_mm`` (row, col; square pixels assumed when unknown), as
    the ratio of its longer to its shorter physical side (1.0 = a square field, as every
    training slice was), and the ratio of its coarser to its finer pixel side."""
    sr, sc = spacing_mm or (1.0, 1.0)
    h, w = shape_hw[0] * sr, shape_hw[1] * sc
    return max(h, w) / min(h, w), max(sr, sc) / min(sr, sc)


def check_field(scan: Scan, path: str | Path) -> None:
    """Refuse a slice the network would see distorted: each slice is resized to the model's
    square input, as in training, so a strongly non-square field would reach it squashed
    (> :data:`MAX_FIELD_STRETCH`), and strongly non-square pixels (> :data:`MAX_PIXEL_ASPECT`:
    the axial reslice of a coronal or sagittal acquisition, e.g. 5 x 0.5 mm) with one axis
    too coarse; its mask, not its geometry, would be wrong."""
    field, pixels = field_stretch(scan.image.shape[1:], scan.spacing_mm)
    size = f"slices of {scan.image.shape[1]} x {scan.image.shape[2]} pixels"
    if scan.spacing_mm:
        size += f" of {scan.spacing_mm[0]:g} x {scan.spacing_mm[1]:g} mm"
    if pixels > MAX_PIXEL_ASPECT:
        raise InputError(
            path,
            f"{size}: pixels {pixels:.1f}x longer one way than the other (a coronal or sagittal acquisition "
            "resliced to axial?); the network was trained on axial slices with square pixels: give the axial series",
        )
    if field > MAX_FIELD_STRETCH:
        raise InputError(
            path,
            f"{size}: a {field:.1f}:1 field that the network (trained on square slices) would see squashed "
            f"{field:.1f}x; give whole axial slices",
        )


def check_scan(scan: Scan, con: Contract, path: str | Path) -> list[str]:
    """Refuse (InputError) a scan the network would see distorted or that is not a head;
    returns the warnings the report starts with (a phantom-trained model, a capture read as CT)."""
    warnings = []
    if "phantom" in con.trained_on:
        warnings.append(
            f"the model was trained on a {con.trained_on}: its volumes on real CT are not validated (the default model is trained on real CT)"
        )
    if "modality" in scan.source:
        warnings.append(f"the series' Modality is {scan.source['modality']}: the user vouches that it is CT in HU")
    check_field(scan, path)
    why = not_a_head(scan.image, scan.spacing_mm, (scan.dicom_geometry or {}).get("body_part"))
    if why:
        raise InputError(path, why)
    return warnings


def override_geometry(
    scan: Scan, spacing: tuple[float, float] | None, thickness: float | None, path: str | Path
) -> None:
    """``--spacing`` (row, col mm) and ``--slice-spacing`` (mm) replace the file's values, in place
    (a DICOM series' affine follows them)."""
    if spacing is not None:
        if len(spacing) != 2 or min(spacing) <= 0:
            raise InputError(path, f"--spacing must be two positive mm values, got {spacing}")
        scan.spacing_mm, scan.source["spacing"] = (float(spacing[0]), float(spacing[1])), "--spacing"
    if thickness is not None:
        if not thickness > 0:
            raise InputError(path, f"--slice-spacing must be positive mm, got {thickness}")
        scan.thickness_mm, scan.source["thickness"] = float(thickness), "--slice-spacing"
        scan.slice_extents_mm = None
    if scan.dicom_geometry is not None and (spacing is not None or thickness is not None):
        # the series' voxel grid in the patient frame, at the spacings now in force
        scan.affine = nifti_affine(scan.dicom_geometry, scan.spacing_mm, scan.thickness_mm, scan.image.shape[0])
