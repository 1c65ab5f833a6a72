"""A synthetic windowed head slice for tests of the intracranial cavity rules."""

from __future__ import annotations

import numpy as np


def skull_slice(size: int = 96, gap: int = 0) -> np.ndarray:
    """(size, size) uint8: a scalp disc (110, radius 0.46 size), a skull ring (255, radii
    0.375-0.42 size, ``gap`` pixels open at the top) and brain (90) inside it."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2 + 0.5, xx - size / 2 + 0.5)
    inner, outer = 0.375 * size, 0.42 * size
    img = np.where(r < 0.46 * size, 110, 0).astype(np.uint8)
    ring = (r >= inner) & (r < outer)
    if gap:
        ring &= ~((yy < size / 2) & (np.abs(xx - size / 2 + 0.5) < gap / 2))
    img[ring] = 255
    img[r < inner] = 90
    return img
