"""Subgroup tags computed from the masks themselves (Tables 3-6 of the paper).

* irregular: the area-weighted mean solidity (area / convex-hull area, per connected
  component and slice, scikit-image ``regionprops``) of the hematoma is below
  ``solidity_below``. Digital ellipsoids and lenses score >= 0.955 (pixelation keeps them below 1); lobulated
  blobs score 0.88-0.945 and crescents far lower.
* near_skull: the smallest in-plane distance (mm, ``scipy.ndimage.distance_transform_edt``
  with the pixel spacing) from any hematoma pixel to the skull is below ``near_skull_mm``.
  The skull is the bone-bright region (windowed value >= ``bone_level``), keeping only the
  large components (>= ``bone_min_fraction`` of the largest one on the slice), so small
  calcifications inside the brain do not count as skull.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import label, regionprops


@dataclass(frozen=True)
class SubgroupThresholds:
    """Documented defaults; override in the config (``subgroups``)."""

    solidity_below: float = 0.95
    near_skull_mm: float = 5.0
    bone_level: int = 250
    bone_min_fraction: float = 0.2
    min_component_px: int = 4


def mean_solidity(mask: np.ndarray) -> float:
    """Area-weighted solidity of all components on all slices of a (Z, H, W) mask (NaN if empty)."""
    total, weighted = 0, 0.0
    for sl in np.asarray(mask, bool):
        if not sl.any():
            continue
        for region in regionprops(label(sl, connectivity=2)):
            if region.area < 4:
                continue
            total += region.area
            weighted += region.area * region.solidity
    return weighted / total if total else float("nan")


def skull_mask(image2d: np.ndarray, th: SubgroupThresholds) -> np.ndarray:
    """Bone-bright pixels in large components (the skull) of one windowed slice."""
    bone = image2d >= th.bone_level
    if not bone.any():
        return bone
    lab, n = ndimage.label(bone)
    sizes = ndimage.sum(bone, lab, index=np.arange(1, n + 1))
    keep = np.flatnonzero(sizes >= th.bone_min_fraction * sizes.max()) + 1
    return np.isin(lab, keep)


def distance_to_skull_mm(
    image: np.ndarray, mask: np.ndarray, spacing_mm: Sequence[float], th: SubgroupThresholds
) -> float:
    """Smallest in-plane distance (mm) from the hematoma to the skull over all slices (inf if none)."""
    best = float("inf")
    for img, m in zip(np.asarray(image), np.asarray(mask, bool)):
        if not m.any():
            continue
        skull = skull_mask(img, th)
        if not skull.any():
            continue
        dist = ndimage.distance_transform_edt(~skull, sampling=tuple(float(s) for s in spacing_mm))
        best = min(best, float(dist[m].min()))
    return best


def tag_patient(
    image: np.ndarray, mask: np.ndarray, spacing_mm: Sequence[float] | None, th: SubgroupThresholds | None = None
) -> dict[str, float | bool]:
    """``{solidity, skull_distance_mm, irregular_auto, near_skull_auto}`` from (Z, H, W) arrays."""
    th = th or SubgroupThresholds()
    if not np.asarray(mask).any():
        return {
            "solidity": float("nan"),
            "skull_distance_mm": float("nan"),
            "irregular_auto": False,
            "near_skull_auto": False,
        }
    sol = mean_solidity(mask)
    dist = distance_to_skull_mm(image, mask, spacing_mm, th) if spacing_mm is not None else float("nan")
    return {
        "solidity": sol,
        "skull_distance_mm": dist,
        "irregular_auto": bool(sol < th.solidity_below),
        "near_skull_auto": bool(np.isfinite(dist) and dist < th.near_skull_mm),
    }
