"""Intensities: the brain window that maps Hounsfield units to the 8-bit slices every model
is trained on, and the check that a volume's values are HU at all (any reader of HU data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hemato.data.readers.errors import InputError


def window_hu(hu: np.ndarray, level: float = 40.0, width: float = 120.0) -> np.ndarray:
    """Linear brain window (HU) -> uint8 0..255 (same mapping as the phantom)."""
    lo = level - width / 2.0
    return np.clip(np.rint((hu - lo) * (255.0 / width)), 0, 255).astype(np.uint8)


def check_ct_values(hu: np.ndarray, path: str | Path, convention: str = "auto") -> None:
    """Refuse a volume whose values are not Hounsfield units, unless the user stated the
    convention (``convention="hu"``). Head CT in HU holds air (below -500 HU) around the
    head; a volume without it lacks its rescale intercept, is pre-windowed 8-bit, or is not
    CT. Raises :class:`InputError` naming the file and the value range."""
    if convention == "hu":
        return
    lo, hi = float(np.min(hu)), float(np.max(hu))
    if lo >= 0 and hi <= 255:
        raise InputError(
            path,
            f"values {lo:g}..{hi:g} look like 8-bit pre-windowed slices, not HU; if they are, give --intensity windowed",
        )
    if lo > -500:
        raise InputError(
            path,
            f"values {lo:g}..{hi:g} are not Hounsfield units (no air below -500 HU; missing rescale intercept?); if they are HU, give --intensity hu",
        )


__all__ = ["check_ct_values", "window_hu"]
