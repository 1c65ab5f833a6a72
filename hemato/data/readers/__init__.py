"""Readers: one contract for every format, ``(image uint8 (Z,H,W) or (H,W), geometry)``.

* ``images``: PNG/JPG slices and mask images;
* ``labelme``: Labelme polygon JSON rasterised to masks (the paper's annotation tool);
* ``nifti``: NIfTI volumes (nibabel), spacing from the header, HU windowed to 0..255;
* ``dicom``: DICOM series (pydicom), sorted by ImagePositionPatient, RescaleSlope/Intercept,
  PixelSpacing, thickness from the slice positions.

Every problem raises :class:`InputError` whose message starts with the offending file.
"""

from hemato.data.readers.errors import InputError

__all__ = ["InputError"]
