"""One scan of any supported format as a :class:`Scan`: dispatch by input kind (a DICOM
series folder or multi-frame file, a NIfTI file, a folder of PNG/JPG slices, a one-patient
manifest), HU windowed into the model's window (``hemato.predict`` and the node read through
:func:`read_scan`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from hemato.data.readers.contract import Scan
from hemato.data.readers.errors import InputError
from hemato.data.readers.images import IMAGE_SUFFIXES, read_slice


def missing_slices(numbers: list[int] | None) -> list[int]:
    """Slice numbers absent between the first and the last of ``numbers`` (empty when
    consecutive or unknown): a stack with gaps would give a partial volume."""
    if not numbers or len(numbers) < 2:
        return []
    have = set(numbers)
    return [k for k in range(min(numbers), max(numbers) + 1) if k not in have]


def _slice_number(p: Path) -> int | None:
    """The last integer in a file name's stem (``IM_0012`` -> 12), or None."""
    nums = re.findall(r"\d+", p.stem)
    return int(nums[-1]) if nums else None


def natural_key(p: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem))


INTENSITY = ("auto", "hu", "windowed")


def _to_window(values: np.ndarray, path: Path, level: float, width: float, intensity: str) -> np.ndarray:
    """HU (or, with ``intensity="windowed"``, 8-bit values already in the model's window)
    -> (Z, H, W) uint8 in the model's window. ``auto`` refuses values that are not HU."""
    from hemato.data.readers.intensity import check_ct_values, window_hu

    if intensity not in INTENSITY:
        raise InputError(path, f"--intensity must be one of {', '.join(INTENSITY)}, got {intensity!r}")
    if intensity == "windowed":
        lo, hi = float(values.min()), float(values.max())
        if lo < 0 or hi > 255:
            raise InputError(path, f"--intensity windowed, but the values span {lo:g}..{hi:g}, not 0..255")
        return np.rint(values).astype(np.uint8)
    check_ct_values(values, path, intensity)
    return window_hu(values, level, width)


def _windowed(scan: Scan, path: Path, level: float, width: float, intensity: str) -> Scan:
    """``scan`` (HU) with its image in the model's window, uint8 (:func:`_to_window`)."""
    return replace(scan, image=_to_window(scan.image, path, level, width, intensity), intensity="windowed")


def _slice_prefix(p: Path) -> str:
    """The name before the slice number (``077_13`` -> ``077_``; ``13`` -> ``''``)."""
    m = re.match(r"^(.*?)(\d+)\D*$", p.stem)
    return m.group(1) if m else p.stem


def read_scan(
    path: str | Path,
    level: float = 40.0,
    width: float = 120.0,
    intensity: str = "auto",
    series_uid: str | None = None,
    manifest_patient: str | None = None,
    assume_ct: bool = False,
) -> Scan:
    """Read a DICOM folder, a NIfTI file, a folder of slices or a one-patient manifest.

    HU inputs (DICOM, NIfTI) are windowed with ``level``/``width`` (the model's contract);
    their values must look like HU unless ``intensity`` says otherwise (``hu`` = trust them,
    ``windowed`` = already 8-bit in that window). A folder holding DICOM files is read as
    DICOM (other files in it are skipped and listed)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "input does not exist")
    name = path.name.lower()
    if path.is_file() and (name.endswith(".nii") or name.endswith(".nii.gz")):
        from hemato.data.readers.nifti import read_nifti

        return _windowed(read_nifti(path), path, level, width, intensity)
    if path.is_file() and name.endswith(".csv"):
        from hemato.data.manifest import load_manifest

        recs = load_manifest(path, require_masks=False, read_masks=False)
        if manifest_patient is not None:
            recs = [r for r in recs if r.patient_id == manifest_patient]
            if not recs:
                raise InputError(path, f"no patient {manifest_patient!r} in the manifest")
        if len(recs) != 1:
            ids = ", ".join(r.patient_id for r in recs[:8]) + (" ..." if len(recs) > 8 else "")
            raise InputError(path, f"manifest lists {len(recs)} patients ({ids}); pick one with --patient ID")
        r = recs[0]
        return Scan(
            r.image,
            r.spacing_mm,
            r.thickness_mm,
            "slices",
            {
                "spacing": "manifest" if r.spacing_mm else "unknown",
                "thickness": "manifest" if r.thickness_mm else "unknown",
            },
            [str(i) for i in r.slice_index],
            slice_numbers=[int(i) for i in r.slice_index],
        )
    from hemato.data.readers.dicom import folder_has_dicom, is_dicom_file, read_dicom_series

    if path.is_dir() or is_dicom_file(path):
        if path.is_file() or folder_has_dicom(path):  # a series folder, or one (multi-frame) file
            scan = read_dicom_series(path, series_uid=series_uid, assume_ct=assume_ct)
            geo = scan.dicom_geometry
            if geo.get("kernel_kind") == "sharp":
                raise InputError(
                    path,
                    f"series {geo['series_uid']} is a sharp-kernel reconstruction (ConvolutionKernel {geo['kernel']}): "
                    "the model was trained on soft-tissue (brain) reconstructions and misses bleeds in bone-kernel noise; "
                    "give the soft-kernel series of this scan",
                )
            return _windowed(scan, path, level, width, intensity)
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
        if not files:
            raise InputError(path, "no DICOM files and no PNG/JPG slices in the folder")
        prefixes = sorted({_slice_prefix(f) for f in files})
        nums = [_slice_number(f) for f in files]
        if len(prefixes) > 1:
            shown = ", ".join(repr(p.rstrip("_-. ")) for p in prefixes[:6]) + (" ..." if len(prefixes) > 6 else "")
            raise InputError(
                path,
                f"slices of {len(prefixes)} patients ({shown}): give one patient's folder (or a one-patient manifest)",
            )
        if None not in nums and len(set(nums)) != len(nums):
            raise InputError(path, "repeated slice numbers: the folder holds more than one scan")
        imgs = []
        for f in files:
            img = read_slice(f)
            if imgs and img.shape != imgs[0].shape:
                raise InputError(f, f"size {img.shape} differs from the other slices {imgs[0].shape}")
            imgs.append(img)
        return Scan(
            np.stack(imgs),
            None,
            None,
            "slices",
            {"spacing": "unknown", "thickness": "unknown"},
            [f.stem for f in files],
            slice_numbers=None if None in nums else nums,
        )
    raise InputError(path, "not a DICOM folder, NIfTI file, slice folder or manifest")
