"""Planimetric hematoma volume (docs/paper.md, section 1): ``V = H * sum_n S_n``, in millilitres.

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


def longest_perpendicular_chord_mm(mask2d: np.ndarray, spacing_mm: Sequence[float], u: np.ndarray) -> float:
    """B: the longest chord INSIDE a 2D mask perpendicular to the unit direction ``u``
    (row, col, in mm space), in mm: the perpendicular diameter a clinician measures.

    The mask is resampled (nearest pixel) on a grid aligned with ``u`` at a quarter of the
    finer pixel spacing; for every line perpendicular to ``u`` the longest run of bleed
    samples is measured, plus one pixel's extent along that line (runs are of pixel
    centres). Hand-written: no library measures a chord constrained to lie in the shape.
    """
    from scipy import ndimage

    m = np.asarray(mask2d, bool)
    if not m.any():
        return 0.0
    sr, sc = _spacing(spacing_mm)
    step = min(sr, sc) / 4.0
    perp = np.array([-u[1], u[0]])
    r, c = np.nonzero(m)
    pts = np.stack([r * sr, c * sc], 1)
    t, s_ = pts @ u, pts @ perp
    ts = np.arange(t.min() - step, t.max() + step, step)
    ss = np.arange(s_.min() - step, s_.max() + step, step)
    tt, sg = np.meshgrid(ts, ss, indexing="ij")
    rows = (tt * u[0] + sg * perp[0]) / sr
    cols = (tt * u[1] + sg * perp[1]) / sc
    inside = ndimage.map_coordinates(m.astype(np.uint8), [rows, cols], order=0, mode="constant", cval=0).astype(bool)
    best = 0
    for line in inside:  # longest run of True per perpendicular line
        if line.any():
            edges = np.diff(np.concatenate([[0], line.astype(np.int8), [0]]))
            starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            best = max(best, int((ends - starts).max()))
    pixel_extent = abs(perp[0]) * sr + abs(perp[1]) * sc
    return float((best - 1) * step + pixel_extent) if best else 0.0


MIN_BLEED_ML = 0.05  # ABC/2 ignores 3D components smaller than this (10 mm^2 on one 5 mm slice)


def abc2(
    mask: np.ndarray,
    spacing_mm: Sequence[float],
    thickness_mm: float,
    min_bleed_ml: float = MIN_BLEED_ML,
    kothari: bool = False,
    bleeds: tuple[np.ndarray, int] | None = None,
) -> dict:
    """ABC/2 (Kothari 1996) of a (Z, H, W) mask, PER BLEED, summed.

    Each 3D connected component (26-connected) of at least ``min_bleed_ml`` (planimetric) is
    one bleed: A = its longest in-plane diameter (mm) on its slice of largest area, B = the
    longest chord inside it perpendicular to A (mm), C = its slice extent x slice spacing
    (mm); with ``kothari`` each slice counts 1 if its area is >= 75 % of the largest, 0.5 if
    >= 25 %, else 0. Bleed volume = A B C / 2 / 1000 ml.

    Returns ``volume_ml`` (sum over bleeds), ``bleeds`` (one dict per bleed: volume_ml, A_mm,
    B_mm, C_mm, n_slices, slice, planimetric_ml, largest first), ``n_bleeds``,
    ``dropped_specks`` and, for tables, ``A_mm``/``B_mm``/``C_mm``/``n_slices``/``slice``
    of the largest bleed (all 0, slice -1, for an empty mask). ``bleeds``: the mask's 3D
    components (labels, n), if the caller has labelled it already."""
    from scipy import ndimage

    m = np.asarray(mask, bool)
    if m.ndim != 3:
        raise ValueError(f"mask must be (Z, H, W), got shape {m.shape}")
    volume_from_areas_ml([0.0], thickness_mm)  # validates the thickness
    row, col = _spacing(spacing_mm)
    h = float(thickness_mm)
    if bleeds is None:
        bleeds = ndimage.label(m, structure=np.ones((3, 3, 3), bool))  # as hemato.engine.label_bleeds
    labels, n = bleeds
    bleeds, dropped = [], 0
    for lab, sl in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        comp = labels[sl] == lab
        planimetric = float(comp.sum()) * row * col * h / 1000.0
        if planimetric < min_bleed_ml:
            dropped += 1
            continue
        areas = comp.reshape(comp.shape[0], -1).sum(1)
        k = int(np.argmax(areas))
        a, _, u = feret_ab_mm(comp[k], spacing_mm)
        b = longest_perpendicular_chord_mm(comp[k], spacing_mm, u)
        z = np.flatnonzero(areas)
        if kothari:
            frac = areas[z] / areas.max()
            c = float(np.where(frac >= 0.75, 1.0, np.where(frac >= 0.25, 0.5, 0.0)).sum()) * h
        else:
            c = float(z[-1] - z[0] + 1) * h
        bleeds.append(
            {
                "volume_ml": a * b * c / 2.0 / 1000.0,
                "A_mm": a,
                "B_mm": b,
                "C_mm": c,
                "n_slices": int(len(z)),
                "slice": int(sl[0].start + k),
                "planimetric_ml": planimetric,
            }
        )
    bleeds.sort(key=lambda d: -d["planimetric_ml"])
    top = bleeds[0] if bleeds else {"A_mm": 0.0, "B_mm": 0.0, "C_mm": 0.0, "n_slices": 0, "slice": -1}
    return {
        "volume_ml": float(sum(d["volume_ml"] for d in bleeds)),
        "A_mm": top["A_mm"],
        "B_mm": top["B_mm"],
        "C_mm": top["C_mm"],
        "n_slices": top["n_slices"],
        "slice": top["slice"],
        "n_bleeds": len(bleeds),
        "dropped_specks": dropped,
        "bleeds": bleeds,
        "method": f"per bleed (3D components >= {min_bleed_ml} ml), B = longest chord perpendicular to A, C = {'Kothari-weighted slices' if kothari else 'slice extent'}",
    }
