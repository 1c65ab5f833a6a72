"""The one reader contract: every reader of a 3D scan returns a :class:`Scan`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

INTENSITIES = ("hu", "windowed", "mask")


@dataclass
class Scan:
    """One patient's slices with their geometry, intensity convention and provenance.

    ``image`` (Z, H, W): float64 in HU (``intensity="hu"``: DICOM, NIfTI), uint8 in the model's
    window (``"windowed"``: slice images, manifests, and any scan after
    :func:`hemato.data.readers.scan.read_scan`), or 0/1 (``"mask"``). Slices are axial, sorted
    inferior -> superior, displayed radiologically (anterior up, patient right on the left)."""

    image: np.ndarray
    spacing_mm: tuple[float, float] | None  # pixel spacing (row, col), mm; None: unknown
    thickness_mm: float | None  # slice spacing (distance between slice centres), mm; None: unknown or varying
    kind: str  # "dicom", "nifti" or "slices"
    source: dict[str, str] = field(default_factory=dict)  # where each geometry value came from
    slice_names: list[str] = field(default_factory=list)
    intensity: str = "windowed"
    affine: np.ndarray | None = None  # 4x4 RAS mm of the (col, row, slice) voxel grid, where known
    nifti_ref: Any = None  # NIfTI: (original image, canonical image), for writing the mask back
    slice_numbers: list[int] | None = None  # slice numbers of a slice folder / manifest (gap check)
    slice_extents_mm: np.ndarray | None = None  # per-slice extents when the slice spacing varies
    dicom_geometry: dict[str, Any] | None = None  # DICOM: orientation, positions, datasets, kernel, ...
    positions_mm: np.ndarray | None = None  # DICOM: slice positions along the normal (NaN: unknown)

    def __post_init__(self) -> None:
        if self.intensity not in INTENSITIES:
            raise ValueError(f"intensity must be one of {INTENSITIES}, got {self.intensity!r}")
