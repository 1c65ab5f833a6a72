"""The one in-memory contract between readers/sources and the datamodule: a patient volume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class VolumeRecord:
    """One patient's scan.

    Attributes:
        patient_id: pseudonymous identifier.
        image: (Z, H, W) uint8 slices, brain-windowed 0..255.
        mask: (Z, H, W) bool hematoma mask, or None for prediction-only data.
        spacing_mm: (row, col) pixel spacing in mm, or None when unknown.
        thickness_mm: slice thickness in mm, or None when unknown.
        slice_index: (Z,) original slice numbers (default 0..Z-1).
        tags: subgroup tags and any clinical columns.
        reference_volume_ml: an external reference volume (e.g. clinicians' ABC/2), if any.
    """

    patient_id: str
    image: np.ndarray
    mask: np.ndarray | None
    spacing_mm: tuple[float, float] | None
    thickness_mm: float | None
    slice_index: np.ndarray | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    reference_volume_ml: float | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3:
            raise ValueError(f"patient {self.patient_id}: image must be (Z, H, W), got {self.image.shape}")
        if self.mask is not None and self.mask.shape != self.image.shape:
            raise ValueError(
                f"patient {self.patient_id}: mask shape {self.mask.shape} != image shape {self.image.shape}"
            )
        if self.slice_index is None:
            self.slice_index = np.arange(self.image.shape[0])
        if len(self.slice_index) != self.image.shape[0]:
            raise ValueError(
                f"patient {self.patient_id}: {len(self.slice_index)} slice indices for {self.image.shape[0]} slices"
            )

    @property
    def n_slices(self) -> int:
        return int(self.image.shape[0])

    @property
    def pixel_area_mm2(self) -> float:
        """Area of one native pixel (mm^2); NaN when the spacing is unknown."""
        if self.spacing_mm is None:
            return float("nan")
        return float(self.spacing_mm[0] * self.spacing_mm[1])


class DataSource(Protocol):
    """Anything that yields patient records (phantom generator, manifest reader, ...)."""

    def load(self) -> list[VolumeRecord]: ...
