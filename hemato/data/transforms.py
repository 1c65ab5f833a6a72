"""Slice resizing shared by training (datamodule) and inference: one definition of how a
native slice becomes a network input, so both see exactly the same pixels."""

from __future__ import annotations

import cv2
import numpy as np


def resize_slice(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W) uint8 -> (size, size) uint8 with area interpolation (antialiased)."""
    if image.shape == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """(H, W) bool -> (size, size) bool: area fraction >= 0.5."""
    if mask.shape == (size, size):
        return mask.astype(bool)
    frac = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return frac >= 0.5
