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


# --------------------------------------------------------------------------------------
# ABC/2 (Kothari et al. 1996; the Tada formula), computed automatically from a mask stack
# --------------------------------------------------------------------------------------
def _pixel_corners_mm(mask2d: np.ndarray, spacing_mm: Sequence[float]) -> np.ndarray:
    """(N, 2) corner points (row_mm, col_mm) of the mask's boundary pixels."""
    from scipy import ndimage

    edge = mask2d & ~ndimage.binary_erosion(mask2d)
    r, c = np.nonzero(edge)
    offs = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    pts = (np.stack([r, c], 1)[:, None, :] + offs[None]).reshape(-1, 2)
    return pts * np.asarray(_spacing(spacing_mm))[None]


def feret_ab_mm(mask2d: np.ndarray, spacing_mm: Sequence[float]) -> tuple[float, float, np.ndarray]:
    """A = longest in-plane diameter (max Feret, mm) of a 2D mask, B = its caliper width
    perpendicular to A (mm), and A's unit direction (row, col).

    Geometry on the convex hull of the pixel corners (scipy.spatial.ConvexHull), so a pixel
    disk of diameter d pixels measures ~d * spacing. B is the extent of the shape along the
    perpendicular of A, the reading a clinician's perpendicular calliper gives.
    """
    from scipy.spatial import ConvexHull, QhullError

    m = np.asarray(mask2d, bool)
    if not m.any():
        return 0.0, 0.0, np.array([1.0, 0.0])
    pts = _pixel_corners_mm(m, spacing_mm)
    try:
        hull = pts[ConvexHull(pts).vertices]
    except QhullError:  # degenerate (a line of pixels)
        hull = pts
    d = np.linalg.norm(hull[:, None, :] - hull[None, :, :], axis=-1)
    i, j = np.unravel_index(np.argmax(d), d.shape)
    a = float(d[i, j])
    u = (hull[j] - hull[i]) / a
    perp = np.array([-u[1], u[0]])
    proj = hull @ perp
    return a, float(proj.max() - proj.min()), u


def abc2(mask: np.ndarray, spacing_mm: Sequence[float], thickness_mm: float) -> dict[str, float]:
    """ABC/2 volume (ml) of a (Z, H, W) mask: A, B (mm) on the slice with the largest area,
    C = number of slices with bleed x thickness (mm). Returns A, B, C, n_slices, volume_ml,
    slice (index of the A/B slice). All zero for an empty mask."""
    m = np.asarray(mask, bool)
    if m.ndim != 3:
        raise ValueError(f"mask must be (Z, H, W), got shape {m.shape}")
    volume_from_areas_ml([0.0], thickness_mm)  # validates the thickness
    areas = m.reshape(m.shape[0], -1).sum(1)
    n = int((areas > 0).sum())
    if n == 0:
        return {"A_mm": 0.0, "B_mm": 0.0, "C_mm": 0.0, "n_slices": 0, "volume_ml": 0.0, "slice": -1}
    k = int(np.argmax(areas))
    a, b, _ = feret_ab_mm(m[k], spacing_mm)
    c = n * float(thickness_mm)
    return {"A_mm": a, "B_mm": b, "C_mm": c, "n_slices": n, "volume_ml": a * b * c / 2.0 / 1000.0, "slice": k}
