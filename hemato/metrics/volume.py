"""Planimetric hematoma volume (SPEC section 1): ``V = H * sum_n S_n``, in millilitres.

S_n = hematoma area of slice n in mm^2 (pixel count x row spacing x column spacing),
H = slice thickness in mm, 1 ml = 1000 mm^3. Spacing is always passed in: there is no
default geometry anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def slice_areas_mm2(mask: np.ndarray, spacing_mm: Sequence[float]) -> np.ndarray:
    """Areas (mm^2) of each slice of a (Z, H, W) or (H, W) binary mask."""
    m = np.asarray(mask)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"mask must be (Z, H, W) or (H, W), got shape {m.shape}")
    row, col = _spacing(spacing_mm)
    return m.reshape(m.shape[0], -1).astype(bool).sum(1) * (row * col)


def volume_from_areas_ml(areas_mm2: Sequence[float], thickness_mm: float) -> float:
    """``H * sum(S_n) / 1000``: volume in ml from per-slice areas (mm^2) and thickness (mm)."""
    if not np.isfinite(thickness_mm) or thickness_mm <= 0:
        raise ValueError(f"slice thickness must be a positive number of mm, got {thickness_mm}")
    return float(np.sum(areas_mm2)) * float(thickness_mm) / 1000.0


def planimetric_volume_ml(mask: np.ndarray, spacing_mm: Sequence[float], thickness_mm: float) -> float:
    """Volume (ml) of a (Z, H, W) binary mask with (row, col) spacing and slice thickness in mm."""
    return volume_from_areas_ml(slice_areas_mm2(mask, spacing_mm), thickness_mm)


def rmse(pred: Sequence[float], true: Sequence[float]) -> float:
    """Root mean squared error (same unit as the inputs, ml for volumes)."""
    p, t = np.asarray(pred, float), np.asarray(true, float)
    return float(np.sqrt(np.mean((p - t) ** 2))) if p.size else float("nan")


def mae(pred: Sequence[float], true: Sequence[float]) -> float:
    """Mean absolute error (same unit as the inputs)."""
    p, t = np.asarray(pred, float), np.asarray(true, float)
    return float(np.mean(np.abs(p - t))) if p.size else float("nan")


def _spacing(spacing_mm: Sequence[float]) -> tuple[float, float]:
    if len(spacing_mm) != 2:
        raise ValueError(f"spacing must be (row_mm, col_mm), got {spacing_mm!r}")
    row, col = float(spacing_mm[0]), float(spacing_mm[1])
    if not (np.isfinite(row) and np.isfinite(col) and row > 0 and col > 0):
        raise ValueError(f"pixel spacing must be positive mm, got {spacing_mm!r}")
    return row, col
