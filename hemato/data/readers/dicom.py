"""DICOM series (pydicom): one patient's axial CT series from a folder.

Slices are sorted by ImagePositionPatient projected on the slice normal (from
ImageOrientationPatient), converted to HU with RescaleSlope/Intercept, and the slice
thickness H is the spacing between consecutive positions (it must be uniform; duplicate or
missing positions are errors). PixelSpacing gives (row, col) mm. Identifying tags are read
by nobody here: only geometry and pixel data leave this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hemato.data.readers.errors import InputError


def read_dicom_series(folder: str | Path, tolerance: float = 0.05, with_geometry: bool = False):
    """Returns ``(hu (Z, H, W) float64, spacing (row, col) mm or None, thickness mm or None,
    positions (Z,) mm along the normal)``, sorted along the slice normal; with
    ``with_geometry`` also ``{"orientation": 6 floats, "origin": first slice position}``."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder of DICOM files")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(folder, "no files in the folder")
    slices = []  # (file, geometry tags, HU)
    for f in files:
        try:
            ds = pydicom.dcmread(f)
            arr = ds.pixel_array.astype(np.float64)
            slope = float(getattr(ds, "RescaleSlope", 1.0))
            intercept = float(getattr(ds, "RescaleIntercept", 0.0))
            tags = {
                "spacing": tuple(float(v) for v in getattr(ds, "PixelSpacing", ())),
                "ipp": [float(v) for v in ds.ImagePositionPatient] if "ImagePositionPatient" in ds else None,
                "iop": [float(v) for v in ds.ImageOrientationPatient] if "ImageOrientationPatient" in ds else None,
                "thickness": float(getattr(ds, "SliceThickness", 0) or 0) or None,
            }
        except (InvalidDicomError, Exception) as e:  # any parsing failure = unreadable file
            raise InputError(f, f"not a readable DICOM image ({e.__class__.__name__}: {str(e)[:80]})") from None
        if arr.ndim != 2:
            raise InputError(f, f"expected one 2D slice per file, got shape {arr.shape}")
        if (tags["ipp"] is not None and len(tags["ipp"]) != 3) or (tags["iop"] is not None and len(tags["iop"]) != 6):
            raise InputError(f, "malformed ImagePositionPatient/ImageOrientationPatient")
        if not all(np.isfinite(v) for v in [slope, intercept, *tags["spacing"], *(tags["ipp"] or []), *(tags["iop"] or [])]):
            raise InputError(f, "non-finite geometry or rescale values")
        hu = arr * slope + intercept
        if not np.isfinite(hu).all():
            raise InputError(f, "NaN/inf pixel values")
        slices.append((f, tags, hu))
    shapes = {s[2].shape for s in slices}
    if len(shapes) > 1:
        raise InputError(folder, f"slices of different sizes {sorted(shapes)}")
    spacings = {t["spacing"] for _, t, _ in slices}
    if len(spacings) > 1:
        raise InputError(folder, f"slices with different pixel spacings {sorted(spacings)}")
    spacing_t = spacings.pop()
    spacing = (spacing_t[0], spacing_t[1]) if len(spacing_t) == 2 and min(spacing_t) > 0 else None

    have_pos = all(t["ipp"] is not None and t["iop"] is not None for _, t, _ in slices)
    if not have_pos:
        if len(slices) > 1:
            raise InputError(folder, "slices without ImagePositionPatient/ImageOrientationPatient: cannot order them or know the thickness")
        thickness = slices[0][1]["thickness"]
        out = (slices[0][2][None], spacing, thickness if thickness and thickness > 0 else None, np.zeros(1))
        return (*out, None) if with_geometry else out
    orient = np.asarray(slices[0][1]["iop"], dtype=np.float64)
    normal = np.cross(orient[:3], orient[3:])
    if not np.linalg.norm(normal) > 0.5:
        raise InputError(slices[0][0], f"degenerate ImageOrientationPatient {orient.tolist()}")
    pos = np.array([float(np.dot(np.asarray(t["ipp"], float), normal)) for _, t, _ in slices])
    order = np.argsort(pos)
    pos = pos[order]
    steps = np.diff(pos)
    if len(steps) and (steps < tolerance).any():
        i = int(np.argmin(steps))
        raise InputError(folder, f"duplicate slice position {pos[i]:.2f} mm ({slices[order[i]][0].name}, {slices[order[i + 1]][0].name})")
    thickness = None
    if len(steps):
        h = float(np.median(steps))
        if (np.abs(steps - h) > tolerance * max(h, 1.0)).any():
            k = int(np.argmax(np.abs(steps - h)))
            raise InputError(folder, f"missing or uneven slice: positions jump by {steps[k]:.2f} mm after {pos[k]:.2f} mm (typical step {h:.2f} mm)")
        thickness = h
    else:
        t = slices[0][1]["thickness"]
        thickness = t if t and t > 0 else None
    hu = np.stack([slices[i][2] for i in order])
    if with_geometry:
        geo = {"orientation": [float(v) for v in orient], "origin": list(slices[order[0]][1]["ipp"])}
        return hu, spacing, thickness, pos, geo
    return hu, spacing, thickness, pos
