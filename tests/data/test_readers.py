"""Readers and importers on files written here: exact geometry, areas and volumes; clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from hemato.data import convert
from hemato.data.manifest import load_manifest
from hemato.data.readers.dicom import read_dicom_series
from hemato.data.readers.errors import InputError
from hemato.data.readers.images import read_mask, read_slice
from hemato.data.readers.labelme import read_labelme
from hemato.data.readers.nifti import read_nifti, window_hu
from hemato.metrics.volume import planimetric_volume_ml
from tests.data.files import write_dicom_series, write_labelme, write_multiframe_ct, write_nifti, write_png


def blob_volume(z=6, h=40, w=48):
    hu = np.full((z, h, w), 30.0)
    mask = np.zeros((z, h, w), bool)
    mask[1:4, 10:20, 12:30] = True  # 3 x 10 x 18 voxels
    hu[mask] = 70.0
    return hu, mask


# ---------------------------------------------------------------- DICOM
def test_dicom_series_geometry_and_order(tmp_path) -> None:
    hu, _ = blob_volume()
    hu[np.arange(6), 0, 0] = np.arange(6) * 10  # mark the slice order
    write_dicom_series(tmp_path / "s", hu, spacing=(0.4, 0.45), thickness=2.5)
    scan = read_dicom_series(tmp_path / "s")
    out, spacing, thickness = scan.image, scan.spacing_mm, scan.thickness_mm
    assert scan.intensity == "hu" and scan.kind == "dicom" and scan.source["spacing"] == "DICOM PixelSpacing"
    assert spacing == (0.4, 0.45) and thickness == pytest.approx(2.5)
    assert np.allclose(np.diff(scan.positions_mm), 2.5) and scan.affine.shape == (4, 4)
    assert np.array_equal(out[:, 0, 0], np.arange(6) * 10.0)  # sorted by position, HU restored
    assert np.allclose(out[:, 5, 5], 30.0)


def test_dicom_errors(tmp_path) -> None:
    hu, _ = blob_volume()
    write_dicom_series(tmp_path / "dup", hu, positions=[0, 5, 10, 10, 15, 20])
    with pytest.raises(InputError, match="duplicate slice position"):
        read_dicom_series(tmp_path / "dup")
    write_dicom_series(tmp_path / "gap", hu, positions=[0, 5, 10, 20, 25, 30])
    with pytest.raises(InputError, match="missing or uneven slice"):
        read_dicom_series(tmp_path / "gap")
    write_dicom_series(tmp_path / "sp", hu, spacing=[[0.5, 0.5]] * 5 + [[0.6, 0.6]])
    with pytest.raises(InputError, match="different pixel spacings"):
        read_dicom_series(tmp_path / "sp")
    files = write_dicom_series(tmp_path / "bad", hu)
    files[2].write_bytes(files[2].read_bytes()[:300])
    with pytest.raises(InputError, match=files[2].name):
        read_dicom_series(tmp_path / "bad")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no files"):
        read_dicom_series(tmp_path / "empty")


def test_dicom_importer_exact_geometry(tmp_path) -> None:
    hu, _ = blob_volume()
    write_dicom_series(tmp_path / "series" / "case01", hu, spacing=(0.5, 0.5), thickness=5.0)
    convert.convert_dicom(tmp_path / "series", tmp_path / "ds", keep_names=True)
    (rec,) = load_manifest(tmp_path / "ds" / "slices.csv", require_masks=False)
    assert rec.patient_id == "case01" and rec.spacing_mm == (0.5, 0.5) and rec.thickness_mm == 5.0
    assert rec.image[2, 15, 20] == window_hu(np.array(70.0))


def test_dicom_importer_takes_masks_as_nifti_in_any_axis_order_or_dicom_seg(tmp_path) -> None:
    import nibabel as nib

    from hemato.data.readers.dicom_seg import write_dicom_seg
    from hemato.data.readers.geometry import nifti_affine

    hu, mask = blob_volume()
    for case in ("a", "b"):
        write_dicom_series(tmp_path / "series" / case, hu, spacing=(0.5, 0.5), thickness=5.0)
    a = read_dicom_series(tmp_path / "series" / "a")
    aff = nifti_affine(a.dicom_geometry, a.spacing_mm, a.thickness_mm, hu.shape[0])
    assert np.allclose(aff, a.affine)  # the reader's affine is the one the mask writers use
    (tmp_path / "masks").mkdir()
    # case a: a NIfTI saved as a viewer would, reoriented to RAS (axes flipped vs. the series)
    img = nib.as_closest_canonical(nib.Nifti1Image(np.transpose(mask, (2, 1, 0)).astype(np.uint8), aff))
    assert not np.allclose(img.affine, aff)  # really another axis order
    nib.save(img, str(tmp_path / "masks" / "a.nii.gz"))
    # case b: a DICOM SEG referencing series b
    geo_b = read_dicom_series(tmp_path / "series" / "b").dicom_geometry
    write_dicom_seg(geo_b["datasets"], mask, tmp_path / "masks" / "b.dcm")
    convert.convert_dicom(tmp_path / "series", tmp_path / "ds", keep_names=True, masks=tmp_path / "masks")
    recs = load_manifest(tmp_path / "ds" / "slices.csv")
    assert [r.patient_id for r in recs] == ["a", "b"]
    for rec in recs:
        assert np.array_equal(rec.mask, mask)  # same voxels as the series, in slice order

    # a mask on another grid (shifted by 2 mm), a missing mask, a non-binary mask: refused
    shifted = aff.copy()
    shifted[:3, 3] += 2.0
    nib.save(
        nib.Nifti1Image(np.transpose(mask, (2, 1, 0)).astype(np.uint8), shifted), str(tmp_path / "masks" / "a.nii.gz")
    )
    with pytest.raises(InputError, match="not the voxel grid"):
        convert.convert_dicom(tmp_path / "series", tmp_path / "ds2", keep_names=True, masks=tmp_path / "masks")
    nib.save(
        nib.Nifti1Image(np.transpose(mask, (2, 1, 0)).astype(np.uint8) * 7, aff), str(tmp_path / "masks" / "a.nii.gz")
    )
    with pytest.raises(InputError, match="not a binary 3D mask"):
        convert.convert_dicom(tmp_path / "series", tmp_path / "ds3", keep_names=True, masks=tmp_path / "masks")
    (tmp_path / "masks" / "a.nii.gz").unlink()
    with pytest.raises(InputError, match="no mask for it"):
        convert.convert_dicom(tmp_path / "series", tmp_path / "ds4", keep_names=True, masks=tmp_path / "masks")
    assert (
        convert.main(
            [
                "dicom",
                "--series",
                str(tmp_path / "series"),
                "--masks",
                str(tmp_path / "masks"),
                "--out",
                str(tmp_path / "ds5"),
            ]
        )
        == 2
    )


# ---------------------------------------------------------------- NIfTI
def test_nifti_importer_exact_volume(tmp_path) -> None:
    hu, mask = blob_volume()
    (tmp_path / "ct_scans").mkdir()
    (tmp_path / "masks").mkdir()
    write_nifti(tmp_path / "ct_scans" / "049.nii", hu, spacing=(0.42, 0.42), thickness=4.5)
    write_nifti(
        tmp_path / "masks" / "049.nii", mask.astype(np.uint8), spacing=(0.42, 0.42), thickness=4.5, dtype=np.uint8
    )
    scan = read_nifti(tmp_path / "ct_scans" / "049.nii")
    data, spacing, thickness = scan.image, scan.spacing_mm, scan.thickness_mm
    assert scan.intensity == "hu" and read_nifti(tmp_path / "masks" / "049.nii", kind="mask").intensity == "mask"
    assert np.allclose(data, hu) and spacing == pytest.approx((0.42, 0.42)) and thickness == pytest.approx(4.5)
    convert.convert_nifti(tmp_path / "ct_scans", tmp_path / "masks", tmp_path / "ds")
    (rec,) = load_manifest(tmp_path / "ds")
    assert rec.patient_id == "049" and np.array_equal(rec.mask, mask)
    expected = 3 * 10 * 18 * 0.42 * 0.42 * 4.5 / 1000
    assert planimetric_volume_ml(rec.mask, rec.spacing_mm, rec.thickness_mm) == pytest.approx(expected, rel=1e-6)


def test_nifti_importer_refuses_a_mask_on_another_grid(tmp_path) -> None:
    import nibabel as nib

    hu, mask = blob_volume()
    (tmp_path / "ct").mkdir()
    (tmp_path / "m").mkdir()
    write_nifti(tmp_path / "ct" / "049.nii", hu, spacing=(0.42, 0.42), thickness=4.5)
    # same shape, but saved with another affine (shifted 10 mm): it lies elsewhere in space
    arr = np.transpose(mask[:, ::-1, ::-1], (2, 1, 0)).astype(np.uint8)
    affine = np.diag([0.42, 0.42, 4.5, 1.0])
    affine[:3, 3] = [10.0, 0, 0]
    nib.save(nib.Nifti1Image(arr, affine), str(tmp_path / "m" / "049.nii"))
    with pytest.raises(InputError, match=r"049.nii: mask geometry \(affine\) differs from the image's by up to 10 mm"):
        convert.convert_nifti(tmp_path / "ct", tmp_path / "m", tmp_path / "ds")


def test_nifti_errors(tmp_path) -> None:
    hu, mask = blob_volume()
    bad = hu.copy()
    bad[0, 0, 0] = np.nan
    write_nifti(tmp_path / "nan.nii", bad, dtype=np.float32)
    with pytest.raises(InputError, match="NaN/inf"):
        read_nifti(tmp_path / "nan.nii")
    (tmp_path / "junk.nii").write_bytes(b"not a nifti" * 10)
    with pytest.raises(InputError, match="junk.nii: not a readable NIfTI"):
        read_nifti(tmp_path / "junk.nii")
    write_nifti(tmp_path / "m.nii", (mask * 3).astype(np.uint8), dtype=np.uint8)
    with pytest.raises(InputError, match="not binary"):
        read_nifti(tmp_path / "m.nii", kind="mask")


# ---------------------------------------------------------------- Labelme / images
def test_labelme_polygon_area(tmp_path) -> None:
    write_labelme(tmp_path / "a.json", [[(10, 5), (29, 5), (29, 14), (10, 14)]], (40, 50))  # 20 x 10 px
    m = read_labelme(tmp_path / "a.json")
    assert m.shape == (40, 50) and m.sum() == 200 and m[5:15, 10:30].all()
    # a triangle: area within a boundary-pixel band of the continuous area
    write_labelme(tmp_path / "t.json", [[(0, 0), (30, 0), (0, 30)]], (40, 40))
    assert abs(read_labelme(tmp_path / "t.json").sum() - 0.5 * 31 * 31) < 31
    write_labelme(tmp_path / "two.json", [[(0, 0), (9, 0), (9, 9), (0, 9)]], (40, 40), label="other")
    assert read_labelme(tmp_path / "two.json", labels=["hematoma"]).sum() == 0
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not valid Labelme JSON"):
        read_labelme(tmp_path / "bad.json")


def test_labelme_importer(tmp_path) -> None:
    img = np.full((40, 50), 100, np.uint8)
    write_png(tmp_path / "img" / "p1_3.png", img)
    write_png(tmp_path / "img" / "p1_4.png", img)
    (tmp_path / "lm").mkdir()
    write_labelme(tmp_path / "lm" / "p1_3.json", [[(10, 5), (29, 5), (29, 14), (10, 14)]], (40, 50))
    convert.convert_labelme(tmp_path / "img", tmp_path / "lm", tmp_path / "ds", spacing=(0.5, 0.5), thickness=5.0)
    (rec,) = load_manifest(tmp_path / "ds")
    assert list(rec.slice_index) == [3, 4] and rec.mask.sum(axis=(1, 2)).tolist() == [200, 0]
    assert planimetric_volume_ml(rec.mask, rec.spacing_mm, rec.thickness_mm) == pytest.approx(200 * 0.25 * 5 / 1000)


def test_image_errors(tmp_path) -> None:
    p = write_png(tmp_path / "ok.png", np.zeros((8, 8), np.uint8))
    data = p.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="trunc.png"):
        read_slice(tmp_path / "trunc.png")
    (tmp_path / "rand.jpg").write_bytes(np.random.default_rng(0).integers(0, 255, 500, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="rand.jpg"):
        read_slice(tmp_path / "rand.jpg")
    write_png(tmp_path / "m.png", np.array([[0, 128], [255, 0]], np.uint8))
    with pytest.raises(InputError, match="m.png: mask is not binary"):
        read_mask(tmp_path / "m.png")
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[1, 1] = (0, 0, 255)
    write_png(tmp_path / "c.png", colour)
    assert read_mask(tmp_path / "c.png", mode="nonzero").sum() == 1
    with pytest.raises(InputError, match="colour mask"):
        read_mask(tmp_path / "c.png")
    with pytest.raises(InputError, match="does not exist"):
        read_slice(tmp_path / "missing.png")


def test_image_importer_size_mismatch(tmp_path) -> None:
    write_png(tmp_path / "img" / "a_1.png", np.zeros((20, 20), np.uint8))
    write_png(tmp_path / "msk" / "a_1.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="differs from image size"):
        convert.convert_images(tmp_path / "img", tmp_path / "msk", tmp_path / "ds")
    assert (
        convert.main(
            [
                "images",
                "--images",
                str(tmp_path / "img"),
                "--masks",
                str(tmp_path / "msk"),
                "--out",
                str(tmp_path / "ds2"),
            ]
        )
        == 2
    )


# ---------------------------------------------------------------- manifest
def test_manifest_checks(tmp_path) -> None:
    write_png(tmp_path / "ds" / "i1.png", np.zeros((10, 10), np.uint8))
    write_png(tmp_path / "ds" / "i2.png", np.zeros((12, 12), np.uint8))
    write_png(tmp_path / "ds" / "m1.png", np.zeros((10, 10), np.uint8))
    csv = tmp_path / "ds" / "slices.csv"
    csv.write_text("patient,slice_index,image,mask\nA,0,i1.png,m1.png\nA,1,i2.png,m1.png\n")
    with pytest.raises(InputError, match="differs from patient A"):
        load_manifest(csv)
    csv.write_text("patient,slice_index,image,mask\nA,0,i1.png,m1.png\nA,0,i1.png,m1.png\n")
    with pytest.raises(InputError, match="twice"):
        load_manifest(csv)
    csv.write_text("patient,slice_index,image,mask\nA,0,../outside.png,m1.png\n")
    with pytest.raises(InputError, match="leaves the dataset folder"):
        load_manifest(csv)
    csv.write_text(
        "patient,slice_index,image,mask,spacing_row_mm,spacing_col_mm,thickness_mm\nA,0,i1.png,m1.png,0.5,0.5,5\nA,1,i1.png,m1.png,0.6,0.6,5\n"
    )
    with pytest.raises(InputError, match="different spacing_row_mm"):
        load_manifest(csv)


def test_shipped_samples_load() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "data"
    ct = load_manifest(root / "ctich-sample" / "slices.csv")
    assert sum(r.n_slices for r in ct) == 36 and {r.patient_id for r in ct} == {"077", "078", "079", "080", "081"}
    assert all(r.spacing_mm is None and r.thickness_mm == 5.0 for r in ct)  # spacing unknown: never guessed
    p81 = next(r for r in ct if r.patient_id == "081")
    assert list(p81.slice_index) == list(range(13, 28)) and p81.mask.any(axis=(1, 2)).all()
    assert "CC BY 4.0" in (root / "ctich-sample" / "README.md").read_text()
    # BHSD derives from RSNA 2019 images, which may not be redistributed: no such pixels ship
    assert not (root / "bhsd-sample").exists()


def test_dicom_importer_pseudonymises_folder_names(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HEMATO_SALT", "test-salt")
    hu, _ = blob_volume()
    write_dicom_series(tmp_path / "series" / "Doe_Jane", hu, name="Doe^Jane", pid="PID-12345")
    convert.convert_dicom(tmp_path / "series", tmp_path / "ds")
    (rec,) = load_manifest(tmp_path / "ds" / "slices.csv", require_masks=False)
    assert rec.patient_id.startswith("anon-") and "Doe" not in rec.patient_id
    from hemato.privacy import pseudonym

    assert rec.patient_id == pseudonym("Doe_Jane", "test-salt") != pseudonym("Doe_Jane", "other-salt")
    for f in (tmp_path / "ds").rglob("*"):
        assert "Doe" not in str(f)
        if f.is_file():
            assert b"Doe" not in f.read_bytes() and b"PID-12345" not in f.read_bytes()


def test_manifest_slice_spacing_column(tmp_path) -> None:
    write_png(tmp_path / "i.png", np.full((16, 16), 100, np.uint8))
    write_png(tmp_path / "m.png", np.zeros((16, 16), np.uint8))
    csv = tmp_path / "slices.csv"
    csv.write_text(
        "patient,slice_index,image,mask,spacing_row_mm,spacing_col_mm,slice_spacing_mm\nA,0,i.png,m.png,0.5,0.5,2.5\nA,1,i.png,m.png,0.5,0.5,2.5\n"
    )
    (rec,) = load_manifest(csv)
    assert rec.thickness_mm == 2.5
    csv.write_text(
        "patient,slice_index,image,mask,spacing_row_mm,spacing_col_mm,slice_spacing_mm,thickness_mm\nA,0,i.png,m.png,0.5,0.5,2.5,5\n"
    )
    with pytest.raises(InputError, match="they differ"):
        load_manifest(csv)


def test_multiframe_per_frame_rescale_and_spacing(tmp_path) -> None:
    """Per-frame functional groups override the shared ones: each frame's own rescale
    intercept gives the same HU as the shared one did."""
    import pydicom

    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 1500, size=(4, 16, 16)).astype(float)
    f = write_multiframe_ct(tmp_path / "mf", hu, spacing=(0.6, 0.6), thickness=2.5)
    ds = pydicom.dcmread(f)
    stored = ds.pixel_array.astype(np.int32)  # frames in file order, intercept -1024
    shared = ds.SharedFunctionalGroupsSequence[0]
    if "PixelValueTransformationSequence" in shared:  # where the converter put it (highdicom versions differ)
        del shared.PixelValueTransformationSequence
    for k, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        item = pydicom.Dataset()
        item.RescaleSlope, item.RescaleIntercept, item.RescaleType = 2, -1024 - 7 * k, "HU"
        group.PixelValueTransformationSequence = pydicom.Sequence([item])
        stored[k] = (stored[k] + 7 * k) // 2  # the same HU through this frame's rescale (even offsets)
    ds.PixelData = stored.astype(np.uint16).tobytes()
    ds.save_as(f)
    mf = read_dicom_series(tmp_path / "mf")
    out, spacing, dz = mf.image, mf.spacing_mm, mf.thickness_mm
    back = pydicom.dcmread(f)
    expect = back.pixel_array.astype(float) * 2 + np.array([-1024 - 7 * k for k in range(4)])[:, None, None]
    order = np.argsort(
        [float(g.PlanePositionSequence[0].ImagePositionPatient[2]) for g in back.PerFrameFunctionalGroupsSequence]
    )
    assert np.array_equal(out, expect[order]) and spacing == (0.6, 0.6) and dz == pytest.approx(2.5)
    assert np.abs(out - hu).max() <= 1  # the written HU (the halving rounds odd values down by 1)
