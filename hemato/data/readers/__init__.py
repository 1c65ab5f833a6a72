"""Readers: one contract for every format, :class:`~hemato.data.readers.contract.Scan` (the
slices, pixel and slice spacing, affine, source geometry, intensity convention, provenance).

* ``scan``: dispatch by input kind (:func:`~hemato.data.readers.scan.read_scan`: DICOM folder or
  multi-frame file, NIfTI file, slice folder, one-patient manifest), HU windowed for a model;
* ``dicom``: DICOM series (pydicom), sorted by ImagePositionPatient, RescaleSlope/Intercept,
  PixelSpacing, slice spacing from the positions; ``dicom_seg`` reads and writes DICOM SEG masks;
* ``nifti``: NIfTI volumes (nibabel), geometry from the affine; writes a mask back in the
  input's own geometry;
* ``images``: PNG/JPG slices and mask images (and writes per-slice mask PNGs);
* ``labelme``: Labelme polygon JSON rasterised to masks (the paper's annotation tool).

Every problem raises :class:`InputError` whose message starts with the offending file.
"""

from hemato.data.readers.contract import Scan
from hemato.data.readers.errors import InputError

__all__ = ["InputError", "Scan"]
