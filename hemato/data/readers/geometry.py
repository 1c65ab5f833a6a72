"""Geometry of a series of slices: each slice's extent along its normal, and the RAS affine
(mm) of a DICOM series' voxel grid for NIfTI output."""

from __future__ import annotations

from typing import Any

import numpy as np


def slice_extents_mm(positions: np.ndarray) -> np.ndarray:
    """Per-slice extent along the normal (mm): half-way to each neighbour; the end slices
    take the step to their one neighbour. Uniform steps h give h for every slice."""
    pos = np.asarray(positions, float)
    if len(pos) < 2:
        return np.full(len(pos), np.nan)
    steps = np.diff(pos)
    ext = np.empty(len(pos))
    ext[0], ext[-1] = steps[0], steps[-1]
    ext[1:-1] = (steps[:-1] + steps[1:]) / 2.0
    return ext


def nifti_affine(
    geo: dict[str, Any], spacing: tuple[float, float] | None, slice_spacing: float | None, n_slices: int
) -> np.ndarray:
    """The 4x4 RAS voxel-to-world affine (mm) of a series read by :func:`read_dicom_series`,
    for NIfTI data indexed (col, row, slice) = ``np.transpose(volume, (2, 1, 0))``.

    DICOM's patient frame is LPS, NIfTI's RAS; the slice axis is taken from the first and
    last slice positions (right for a tilted gantry). Identity when the series has no
    orientation (secondary captures)."""
    affine = np.eye(4)
    if not geo.get("orientation"):
        return affine
    row_dir, col_dir = np.asarray(geo["orientation"][:3], float), np.asarray(geo["orientation"][3:], float)
    sr, sc = spacing or (1.0, 1.0)
    affine[:3, 0] = row_dir * sc
    affine[:3, 1] = col_dir * sr
    if n_slices > 1:
        affine[:3, 2] = (np.asarray(geo["last"], float) - np.asarray(geo["origin"], float)) / (n_slices - 1)
    else:
        affine[:3, 2] = np.cross(row_dir, col_dir) * (slice_spacing or 1.0)
    affine[:3, 3] = geo["origin"]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
