"""The predicted mask as a DICOM Segmentation object (highdicom), for DICOM inputs.

The SEG references the source CT series instance by instance, so 3D Slicer, OHIF and PACS
viewers overlay it on the scan. It necessarily carries the source's patient and study
identifiers (a SEG belongs to its study), which is why ``hemato.predict`` writes it only on
request (``--dicom-seg``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import hemato


def _source_frames(source: list[Any], mask: np.ndarray, frames: list[int] | None) -> tuple[list[Any], np.ndarray]:
    """(source images, mask) as highdicom takes them: the single-frame instances with the
    mask in their order, or the one multi-frame instance with the mask in frame order
    (``frames``: the 1-based frame of each mask slice, from ``read_dicom_series``)."""
    if len(source) != mask.shape[0]:
        raise ValueError(f"{len(source)} source images for a mask of {mask.shape[0]} slices")
    if frames is None:
        return list(source), np.asarray(mask, bool)
    if len({str(ds.SOPInstanceUID) for ds in source}) != 1 or len(frames) != mask.shape[0]:
        raise ValueError("a multi-frame source is one instance with one frame number per mask slice")
    n = int(source[0].NumberOfFrames)
    full = np.zeros((n, *mask.shape[1:]), bool)
    full[np.asarray(frames) - 1] = mask
    return [source[0]], full


def write_dicom_seg(
    source: list[Any], mask: np.ndarray, path: str | Path, model_name: str = "hemato", frames: list[int] | None = None
) -> Path:
    """Write ``mask`` (Z, H, W) bool, in the order of ``source`` (the series' pydicom
    datasets, sorted along the slice normal; for a multi-frame image the one dataset
    repeated, with ``frames`` the 1-based frame of each slice), as a binary SEG with one
    segment (intracranial hemorrhage, automatic). Returns the path."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    source, mask = _source_frames(source, mask, frames)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model_name, version=hemato.__version__, family=codes.cid7162.ArtificialIntelligence
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="intracranial hemorrhage",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Hemorrhage,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    seg = hd.seg.Segmentation(
        source_images=source,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=hd.UID(),
        series_number=9901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="hemato",
        manufacturer_model_name=model_name,
        software_versions=hemato.__version__,
        device_serial_number="none",
        series_description="hemato hemorrhage segmentation (research use)",
        omit_empty_frames=False,
    )
    path = Path(path)
    seg.save_as(path)
    return path


def read_dicom_seg(path: str | Path, source: list[Any], frames: list[int] | None = None) -> np.ndarray:
    """The SEG's segment 1 back as (Z, H, W) bool on ``source``'s instances, in their order
    (for a multi-frame source, on its ``frames``, 1-based, in their order)."""
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    if frames is not None:
        pix = seg.get_pixels_by_source_frame(
            str(source[0].SOPInstanceUID), [int(f) for f in frames], segment_numbers=[1], ignore_spatial_locations=True
        )
    else:
        uids = [str(ds.SOPInstanceUID) for ds in source]
        pix = seg.get_pixels_by_source_instance(uids, segment_numbers=[1], ignore_spatial_locations=True)
    return np.asarray(pix[..., 0], bool)
