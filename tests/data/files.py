"""Writers of small real files for the reader tests (DICOM, NIfTI, Labelme, PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def write_dicom_series(
    folder: Path,
    hu: np.ndarray,
    spacing=(0.5, 0.5),
    thickness=5.0,
    positions=None,
    name="Doe^Jane",
    pid="PID-12345",
    modality="CT",
    series=None,
    iop=(1, 0, 0, 0, 1, 0),
    ipps=None,
    with_ipp=True,
    image_type=None,
    compress=None,
    prefix="IM",
    intercept=-1024,
    tags: dict | None = None,
) -> list[Path]:
    """(Z, H, W) HU -> one CT file per slice, stored as uint16 with ``intercept``.

    ``positions``: z (mm) per slice; ``ipps``: full ImagePositionPatient per slice (tilt);
    ``with_ipp=False``: a secondary capture (no IPP/IOP, InstanceNumber only); ``compress``:
    a transfer syntax UID to encode with (pydicom's encoders); ``tags``: more attributes
    (keyword -> value) for every file, e.g. ConvolutionKernel."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series = series or generate_uid()
    study, frame = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
    out = []
    z = positions if positions is not None else [k * thickness for k in range(hu.shape[0])]
    order = np.random.default_rng(0).permutation(hu.shape[0])  # files not in slice order
    for n, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID = series
        ds.StudyInstanceUID, ds.FrameOfReferenceUID = study, frame
        ds.StudyID, ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName = (
            "1",
            "20260101",
            "120000",
            "A1",
            "",
        )
        ds.SeriesNumber, ds.PatientSex, ds.Manufacturer = 2, "O", "test"
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, pid, "19500101"
        ds.Modality = modality
        ds.InstanceNumber = int(k) + 1
        if image_type:
            ds.ImageType = list(image_type)
        for key, value in (tags or {}).items():
            setattr(ds, key, value)
        ds.Rows, ds.Columns = hu.shape[1:]
        ds.PixelSpacing = [spacing[0], spacing[1]] if not isinstance(spacing, list) else spacing[k]
        if with_ipp:
            ds.ImageOrientationPatient = list(iop)
            ds.ImagePositionPatient = list(ipps[k]) if ipps is not None else [-100.0, -100.0, float(z[k])]
        ds.SliceThickness = thickness
        ds.RescaleSlope, ds.RescaleIntercept = 1, intercept
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = (hu[k] - intercept).astype(np.uint16).tobytes()
        if compress is not None:
            ds.compress(compress)
        path = folder / f"{prefix}{n:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def write_multiframe_ct(folder: Path, hu: np.ndarray, **kw) -> Path:
    """(Z, H, W) HU -> ONE multi-frame CT file (Legacy Converted Enhanced CT, highdicom's
    converter of the single-file series :func:`write_dicom_series` writes with ``kw``): each
    frame's position in its per-frame functional groups, spacing and rescale shared."""
    import shutil
    import warnings

    import highdicom as hd
    import pydicom

    singles = folder.with_name(folder.name + "_singles")
    kw.setdefault("image_type", ["ORIGINAL", "PRIMARY", "AXIAL"])  # highdicom 0.23 needs it
    files = write_dicom_series(singles, hu, **kw)
    with warnings.catch_warnings():  # "FrameType cannot be determined": not needed here
        warnings.simplefilter("ignore")
        mf = hd.legacy.LegacyConvertedEnhancedCTImage(
            legacy_datasets=[pydicom.dcmread(f) for f in files],
            series_instance_uid=hd.UID(),
            series_number=3,
            sop_instance_uid=hd.UID(),
            instance_number=1,
        )
    shutil.rmtree(singles)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "enhanced.dcm"
    mf.save_as(path)
    return path


def write_nifti(path: Path, data_zhw: np.ndarray, spacing=(0.5, 0.5), thickness=5.0, dtype=np.int16) -> None:
    """(Z, H, W) display-ordered slices -> RAS NIfTI (inverse of hemato's reader)."""
    import nibabel as nib

    arr = np.transpose(data_zhw[:, ::-1, ::-1], (2, 1, 0)).astype(dtype)
    affine = np.diag([spacing[1], spacing[0], thickness, 1.0])
    nib.save(nib.Nifti1Image(arr, affine), str(path))


def write_labelme(
    path: Path, polygons: list[list[tuple[float, float]]], hw: tuple[int, int], label: str = "hematoma"
) -> None:
    shapes = [{"label": label, "points": [list(p) for p in poly], "shape_type": "polygon"} for poly in polygons]
    path.write_text(
        json.dumps(
            {
                "version": "5.4.1",
                "shapes": shapes,
                "imageHeight": hw[0],
                "imageWidth": hw[1],
                "imagePath": path.stem + ".png",
            }
        )
    )


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), arr)
    return path


def sample_hu(patient: str = "081") -> np.ndarray:
    """The shipped sample's slices of ``patient`` (ct-ich, 40/120 window, 8-bit) back in HU
    (Z, H, W): air (window floor) -1000 HU, bone (window top) 1000 HU."""
    import pandas as pd

    from hemato.data.readers.images import read_slice

    sample = Path(__file__).resolve().parents[2] / "data" / "ctich-sample"
    rows = pd.read_csv(sample / "slices.csv", dtype={"patient": str})
    rows = rows[rows["patient"] == patient].sort_values("slice_index")
    img = np.stack([read_slice(sample / f) for f in rows["image"]]).astype(np.float64)
    hu = img / 255.0 * 120.0 - 20.0
    hu[img <= 4] = -1000.0
    hu[img >= 251] = 1000.0
    return hu
