"""No silent wrong number: each input that once gave a wrong volume with status "ok" now
gives the right number or a one-line error naming the file and the problem.

The network here is an exact pointwise "threshold network" (windowed blood-bright pixels ->
bleed; bone excluded), so every scan has a known right answer and the whole predict path
(reading, geometry, windowing, engine, volume, files) is what is tested.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import hemato.predict as P
import hemato.weights.load as W
from hemato.data.readers.errors import InputError
from hemato.engine import Contract
from tests.data.files import write_dicom_series, write_multiframe_ct, write_nifti, write_png

SP = (0.5, 0.5)  # pixel spacing, mm


def _bright_forward(x: torch.Tensor) -> torch.Tensor:
    """Logit > 0 exactly where the 40/120-windowed value is blood-like (0.6..0.95)."""
    return torch.where((x > 0.6) & (x < 0.95), torch.full_like(x, 10.0), torch.full_like(x, -10.0))


_bright_forward.size_divisor = 32  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def threshold_network(monkeypatch: pytest.MonkeyPatch):
    def load(path, device="cpu", channels_last=None, precision="32"):
        con = Contract(input_size=64, trained_on="test threshold network")
        return W.LoadedModel(
            _bright_forward, 64, {"checkpoint": str(path), "sha256": "0" * 64, "model": {"name": "test"}}, None, con
        )

    monkeypatch.setattr(W, "load_model", load)


def head(z: int = 6, blood: tuple[slice, slice, slice] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(Z, 64, 64) HU: air outside a 'skull' ring, brain 30 HU, blood 70 HU; and the truth."""
    yy, xx = np.mgrid[:64, :64]
    r2 = (yy - 32) ** 2 + (xx - 32) ** 2
    hu = np.full((z, 64, 64), -1000.0)
    hu[:, r2 < 30**2] = 1000.0  # bone
    hu[:, r2 < 27**2] = 30.0
    truth = np.zeros(hu.shape, bool)
    blood = blood or (slice(1, 4), slice(20, 30), slice(22, 36))
    truth[blood] = True
    hu[truth] = 70.0
    return hu, truth


def ml(voxels: int, sp=SP, h=5.0) -> float:
    return voxels * sp[0] * sp[1] * h / 1000.0


def run(inp: Path, out: Path, **kw) -> dict:
    return P.predict("model.pt", inp, out, **kw)


# ------------------------------------------------------------------ intensities (item 2)
def test_nifti_without_intercept_is_refused_unless_stated(tmp_path: Path) -> None:
    hu, truth = head()
    write_nifti(tmp_path / "raw.nii.gz", hu + 1024, spacing=SP, thickness=5.0)  # stored values, no -1024
    with pytest.raises(InputError, match="not Hounsfield units"):
        run(tmp_path / "raw.nii.gz", tmp_path / "o1")
    good = tmp_path / "hu.nii.gz"
    write_nifti(good, hu, spacing=SP, thickness=5.0)
    assert run(good, tmp_path / "o2")["volume_ml"] == pytest.approx(ml(truth.sum()))


def test_prewindowed_8bit_nifti_is_refused_or_read_as_stated(tmp_path: Path) -> None:
    from hemato.data.readers.nifti import window_hu

    hu, truth = head()
    write_nifti(tmp_path / "w.nii.gz", window_hu(hu).astype(np.float64), spacing=SP, thickness=5.0, dtype=np.uint8)
    with pytest.raises(InputError, match="8-bit pre-windowed"):
        run(tmp_path / "w.nii.gz", tmp_path / "o1")
    r = run(tmp_path / "w.nii.gz", tmp_path / "o2", intensity="windowed")
    assert r["volume_ml"] == pytest.approx(ml(truth.sum())) and r["volume_status"] == "ok"


def test_non_ct_dicom_is_refused(tmp_path: Path) -> None:
    hu, _ = head()
    write_dicom_series(tmp_path / "mr", hu, spacing=SP, modality="MR")
    with pytest.raises(InputError, match="Modality is MR"):
        run(tmp_path / "mr", tmp_path / "o")


def test_contract_threshold_and_window_are_applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hu, truth = head()
    write_nifti(tmp_path / "s.nii.gz", hu, spacing=SP, thickness=5.0)
    assert run(tmp_path / "s.nii.gz", tmp_path / "o1", threshold=0.9)["volume_ml"] == pytest.approx(
        ml(truth.sum())
    )  # p = 0.99995

    # a model trained on another window: 70 HU blood is no longer in the bright band
    def load(path, device="cpu", channels_last=None, precision="32"):
        return W.LoadedModel(
            _bright_forward,
            64,
            {"checkpoint": "x", "sha256": "0"},
            None,
            Contract(input_size=64, window_level=300, window_width=400),
        )

    monkeypatch.setattr(W, "load_model", load)
    r = run(tmp_path / "s.nii.gz", tmp_path / "o2")
    assert r["contract"]["window_level"] == 300 and r["volume_ml"] == 0.0


# ------------------------------------------------------------------ geometry (items 3, 4, 5)
def test_tilted_dicom_series_volume_and_mask_position(tmp_path: Path) -> None:
    import nibabel as nib

    tilt = math.radians(20)
    n = 6
    hu, truth = head(n)
    ipps = [[-100.0, -100.0 + k * 5.0 * math.sin(tilt), k * 5.0 * math.cos(tilt)] for k in range(n)]
    write_dicom_series(tmp_path / "tilt", hu, spacing=SP, ipps=ipps)
    r = run(tmp_path / "tilt", tmp_path / "o")
    h = 5.0 * math.cos(tilt)  # distance between slice planes
    assert r["slice_spacing_mm"] == pytest.approx(h) and r["volume_ml"] == pytest.approx(ml(truth.sum(), h=h))
    m = nib.load(tmp_path / "o" / "mask.nii.gz")
    data = np.asarray(m.dataobj)  # (col, row, slice)
    k = n - 1
    # voxel (col 0, row 0, slice k) must sit where slice k's first pixel is (LPS -> RAS)
    world = m.affine @ np.array([0, 0, k, 1.0])
    lps = np.array(ipps[k])
    assert np.allclose(world[:3], [-lps[0], -lps[1], lps[2]], atol=1e-6)
    assert (np.transpose(data, (2, 1, 0)).astype(bool) == truth).all()


def test_sheared_nifti_uses_the_voxel_volume_of_the_affine(tmp_path: Path) -> None:
    import nibabel as nib

    hu, truth = head()
    t = math.radians(20)
    arr = np.transpose(hu[:, ::-1, ::-1], (2, 1, 0)).astype(np.int16)
    affine = np.array(
        [[SP[1], 0, 0, 0], [0, SP[0], 5.0 * math.sin(t), 0], [0, 0, 5.0 * math.cos(t), 0], [0, 0, 0, 1.0]]
    )
    nib.save(nib.Nifti1Image(arr, affine), str(tmp_path / "shear.nii.gz"))
    r = run(tmp_path / "shear.nii.gz", tmp_path / "o")
    assert r["volume_ml"] == pytest.approx(ml(truth.sum(), h=5.0 * math.cos(t)), rel=1e-6)


def test_nifti_in_metres_is_converted(tmp_path: Path) -> None:
    import nibabel as nib

    hu, truth = head()
    arr = np.transpose(hu[:, ::-1, ::-1], (2, 1, 0)).astype(np.int16)
    img = nib.Nifti1Image(arr, np.diag([SP[1] / 1000, SP[0] / 1000, 0.005, 1.0]))
    img.header.set_xyzt_units("meter")
    nib.save(img, str(tmp_path / "m.nii.gz"))
    assert run(tmp_path / "m.nii.gz", tmp_path / "o")["volume_ml"] == pytest.approx(ml(truth.sum()))


def test_gaps_in_slice_numbers_refuse_the_volume(tmp_path: Path) -> None:
    from hemato.data.readers.nifti import window_hu

    hu, _ = head()
    for k in (0, 2, 4):  # every other slice of a scan
        write_png(tmp_path / "gap" / f"slice_{k:02d}.png", window_hu(hu[k]))
    r = run(tmp_path / "gap", tmp_path / "o", spacing=SP, thickness=5.0)
    assert r["volume_ml"] is None and "slice numbers 1, 3 are missing" in r["volume_status"]


def test_two_slice_spacings_measure_with_per_slice_extents(tmp_path: Path) -> None:
    n = 8
    hu, truth = head(n, (slice(2, 7), slice(20, 30), slice(22, 36)))
    z = [0, 2.5, 5, 7.5, 10, 15, 20, 25]
    write_dicom_series(tmp_path / "two", hu, spacing=SP, positions=z)
    r = run(tmp_path / "two", tmp_path / "o")
    per_slice = truth.reshape(n, -1).sum(1) * SP[0] * SP[1]
    ext = [2.5, 2.5, 2.5, 2.5, 3.75, 5, 5, 5]
    assert r["volume_ml"] == pytest.approx(float(np.dot(per_slice, ext)) / 1000) and r["volume_status"].startswith("ok")


def test_an_isolated_missing_dicom_slice_is_still_refused(tmp_path: Path) -> None:
    hu, _ = head(5)
    write_dicom_series(tmp_path / "gap", hu, spacing=SP, positions=[0, 5, 10, 20, 25])
    with pytest.raises(InputError, match="missing or uneven slice"):
        run(tmp_path / "gap", tmp_path / "o")


def test_secondary_capture_without_positions(tmp_path: Path) -> None:
    hu, truth = head()
    write_dicom_series(tmp_path / "sc", hu, spacing=SP, with_ipp=False)  # files in shuffled order
    r = run(tmp_path / "sc", tmp_path / "o1")
    assert r["volume_ml"] is None and "slice spacing unknown" in r["volume_status"]
    assert "InstanceNumber" in r["geometry_source"]["thickness"]
    r = run(tmp_path / "sc", tmp_path / "o2", thickness=5.0)
    assert r["volume_ml"] == pytest.approx(ml(truth.sum()))
    areas = [s["area_px"] for s in r["slices"]]
    assert areas == truth.reshape(len(truth), -1).sum(1).tolist()  # ordered by InstanceNumber


# ------------------------------------------------------------------ DICOM series (item 7)
def test_interleaved_second_series_is_not_merged(tmp_path: Path) -> None:
    hu, truth = head()
    write_dicom_series(tmp_path / "s", hu, spacing=SP, series="1.2.3.1", prefix="A")
    write_dicom_series(
        tmp_path / "s", hu, spacing=SP, series="1.2.3.2", positions=[2.5 + 5 * k for k in range(len(hu))], prefix="B"
    )
    with pytest.raises(InputError, match=r"2 image series: 1\.2\.3\.1 \(6 images\); 1\.2\.3\.2 \(6 images\)"):
        run(tmp_path / "s", tmp_path / "o")
    r = run(tmp_path / "s", tmp_path / "o", series_uid="1.2.3.2")
    assert r["volume_ml"] == pytest.approx(ml(truth.sum()))


@pytest.mark.parametrize(
    "iop,ipp,plane",
    [
        ((1, 0, 0, 0, 0, -1), lambda k: [-100.0, 5.0 * k, 50.0], "coronal"),
        ((0, 1, 0, 0, 0, -1), lambda k: [5.0 * k, -100.0, 50.0], "sagittal"),
    ],
)
def test_a_non_axial_series_is_refused_naming_its_plane(tmp_path: Path, iop, ipp, plane) -> None:
    """A coronal or sagittal reformat alone would be segmented in a plane the model never saw
    and its volume reported "ok": refused, in one line naming the folder and the plane."""
    hu, _ = head()
    write_dicom_series(tmp_path / "r", hu, spacing=SP, iop=iop, ipps=[ipp(k) for k in range(len(hu))])
    with pytest.raises(InputError, match=rf"r: series .* is {plane} .*hemato segments axial slices"):
        run(tmp_path / "r", tmp_path / "o")
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.predict", "--input", str(tmp_path / "r"), "--output", str(tmp_path / "o2")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and f"is {plane}" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o2" / "report.json").exists()
    # beside an axial series, the axial one is measured as before
    write_dicom_series(tmp_path / "r", hu, spacing=SP, prefix="AX")
    assert run(tmp_path / "r", tmp_path / "o3")["n_slices"] == len(hu)


def test_coronal_nifti_resliced_to_axial_is_refused(tmp_path: Path) -> None:
    """A coronal acquisition (0.5 mm in plane, 5 mm between coronal slices) read as axial
    slices gives 5 x 0.5 mm pixels: one axis 10x coarser than any training slice."""
    import nibabel as nib

    hu, _ = head(6)
    arr = np.transpose(hu, (2, 0, 1)).astype(np.int16)  # voxel axes: x, y (coronal slices), z
    nib.save(nib.Nifti1Image(arr, np.diag([0.5, 5.0, 0.5, 1.0])), str(tmp_path / "cor.nii.gz"))
    with pytest.raises(InputError, match=r"cor\.nii\.gz: slices of 6 x 64 pixels of 5 x 0\.5 mm: pixels 10\.0x longer"):
        run(tmp_path / "cor.nii.gz", tmp_path / "o")
    assert not (tmp_path / "o" / "report.json").exists()


def test_mildly_non_square_pixels_are_measured_and_flagged(tmp_path: Path) -> None:
    hu, truth = head()
    write_nifti(tmp_path / "a.nii.gz", hu, spacing=(0.5, 0.6))
    r = run(tmp_path / "a.nii.gz", tmp_path / "o")
    assert r["volume_ml"] == pytest.approx(ml(truth.sum(), sp=(0.5, 0.6)))
    assert any("1.20:1" in q and "stretched 20 %" in q for q in r["input_qc"])
    assert any("non-square pixels (1.20:1)" in q for q in r["input_qc"])
    r = run(tmp_path / "a.nii.gz", tmp_path / "o2", spacing=(0.5, 0.5))  # square pixels: no flag
    assert not any("stretched" in q for q in r["input_qc"])


def test_strongly_non_square_slices_are_refused(tmp_path: Path) -> None:
    d = tmp_path / "png"
    hu, _ = head(3)
    for k in range(3):  # 64 x 32 crops of the head: a 2:1 field
        write_png(d / f"scan_{k:03d}.png", np.clip((hu[k, :, 16:48] + 20) * 255 / 120, 0, 255).astype(np.uint8))
    with pytest.raises(InputError, match=r"png: slices of 64 x 32 pixels of 0\.5 x 0\.5 mm: a 2\.0:1 field"):
        run(d, tmp_path / "o", spacing=(0.5, 0.5), thickness=5.0)


def test_multiframe_enhanced_ct_measures_like_its_single_files(tmp_path: Path) -> None:
    """One multi-frame file (Enhanced / Legacy Converted Enhanced CT) gives the volume, mask
    and mask position of the single-file series it holds, and its DICOM SEG references its
    frames (read back onto the same voxels)."""
    import nibabel as nib

    from hemato.data.readers.dicom import read_dicom_series
    from hemato.data.readers.dicom_seg import read_dicom_seg

    tilt = math.radians(15)
    hu, truth = head()
    ipps = [[-100.0, -100.0 + k * 5.0 * math.sin(tilt), k * 5.0 * math.cos(tilt)] for k in range(len(hu))]
    write_dicom_series(tmp_path / "single", hu, spacing=SP, ipps=ipps)
    write_multiframe_ct(tmp_path / "multi", hu, spacing=SP, ipps=ipps)
    assert len(list((tmp_path / "multi").iterdir())) == 1
    a = run(tmp_path / "single", tmp_path / "a")
    b = run(tmp_path / "multi", tmp_path / "b", dicom_seg=True)
    assert b["volume_status"] == "ok" and b["volume_ml"] == pytest.approx(a["volume_ml"])
    assert b["volume_ml"] == pytest.approx(ml(truth.sum(), h=5.0 * math.cos(tilt)))
    ma, mb = nib.load(tmp_path / "a" / "mask.nii.gz"), nib.load(tmp_path / "b" / "mask.nii.gz")
    assert np.allclose(ma.affine, mb.affine) and np.array_equal(np.asarray(ma.dataobj), np.asarray(mb.dataobj))
    c = run(tmp_path / "multi" / "enhanced.dcm", tmp_path / "c")  # the file itself as --input
    assert c["volume_ml"] == pytest.approx(a["volume_ml"]) and c["input"]["kind"] == "dicom"
    assert P.scans_in(tmp_path / "multi") == [tmp_path / "multi" / "enhanced.dcm"]  # a cohort entry too
    geo = read_dicom_series(tmp_path / "multi").dicom_geometry
    assert sorted(geo["frames"]) == list(range(1, len(hu) + 1))
    back = read_dicom_seg(tmp_path / "b" / "seg.dcm", geo["datasets"], geo["frames"])
    assert np.array_equal(back, np.transpose(np.asarray(mb.dataobj), (2, 1, 0)).astype(bool))


def test_multiframe_gaps_and_missing_positions_are_refused(tmp_path: Path) -> None:
    import pydicom

    hu, _ = head(5)
    write_multiframe_ct(tmp_path / "gap", hu, spacing=SP, positions=[0, 5, 10, 20, 25])
    with pytest.raises(InputError, match="missing or uneven slice"):
        run(tmp_path / "gap", tmp_path / "o")
    f = write_multiframe_ct(tmp_path / "nopos", hu, spacing=SP)
    ds = pydicom.dcmread(f)
    del ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence
    ds.save_as(f)
    with pytest.raises(InputError, match=r"enhanced\.dcm: frame 3 of the multi-frame image has no plane position"):
        run(tmp_path / "nopos", tmp_path / "o")
    del ds.PerFrameFunctionalGroupsSequence
    ds.save_as(f)
    with pytest.raises(InputError, match="multi-frame image without per-frame positions"):
        run(tmp_path / "nopos", tmp_path / "o")


def test_feet_first_series_runs_from_the_feet_up_like_training(tmp_path: Path) -> None:
    """A feet-first series (IOP -1,0,0,0,1,0: its normal points to the feet) is read in the
    same slice order as the head-first one, so a 2.5D network gets its neighbours in the
    order it was trained on; volume and mask position are unchanged."""
    import nibabel as nib

    from hemato.data.readers.dicom import read_dicom_series

    hu, truth = head()
    hu[:, 0, 0] = np.arange(len(hu))  # a slice tag in a corner of air
    write_dicom_series(tmp_path / "hf", hu, spacing=SP)
    ff = hu[:, :, ::-1]  # rows along -x: the same patient seen from the feet
    x0 = -100.0 + (hu.shape[2] - 1) * SP[1]  # its first column is the head-first series' last
    ipps = [[x0, -100.0, 5.0 * k] for k in range(len(hu))]
    write_dicom_series(tmp_path / "ff", ff, spacing=SP, iop=(-1, 0, 0, 0, 1, 0), ipps=ipps)
    a, b = read_dicom_series(tmp_path / "hf").image, read_dicom_series(tmp_path / "ff").image
    assert a[:, 0, 0].tolist() == b[:, 0, -1].tolist() == list(range(len(hu)))  # inferior first
    ra, rb = run(tmp_path / "hf", tmp_path / "a"), run(tmp_path / "ff", tmp_path / "b")
    assert rb["volume_ml"] == pytest.approx(ra["volume_ml"]) == pytest.approx(ml(truth.sum()))
    ma, mb = nib.load(tmp_path / "a" / "mask.nii.gz"), nib.load(tmp_path / "b" / "mask.nii.gz")
    # the two masks cover the same world positions
    wa = {tuple(np.round(ma.affine @ [*v, 1.0], 3)[:3]) for v in np.argwhere(np.asarray(ma.dataobj) > 0)}
    wb = {tuple(np.round(mb.affine @ [*v, 1.0], 3)[:3]) for v in np.argwhere(np.asarray(mb.dataobj) > 0)}
    assert wa == wb and len(wa) == truth.sum()


def test_scout_stray_files_and_preview_are_skipped(tmp_path: Path) -> None:
    hu, truth = head()
    d = tmp_path / "scan"
    write_dicom_series(d, hu, spacing=SP)
    write_dicom_series(
        d, hu[:1], spacing=SP, iop=(1, 0, 0, 0, 0, -1), image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"], prefix="SCOUT"
    )
    (d / "notes.txt").write_text("exported by PACS")
    write_png(d / "preview.jpg", np.zeros((64, 64), np.uint8))
    r = run(d, tmp_path / "o")
    assert r["input"]["kind"] == "dicom" and r["n_slices"] == 6
    assert r["volume_ml"] == pytest.approx(ml(truth.sum()))


def test_compressed_dicom_is_decoded(tmp_path: Path) -> None:
    from pydicom.uid import JPEG2000Lossless, RLELossless

    hu, truth = head()
    for uid in (RLELossless, JPEG2000Lossless):
        write_dicom_series(tmp_path / uid.name, hu, spacing=SP, compress=uid)
        assert run(tmp_path / uid.name, tmp_path / f"o-{uid.name}")["volume_ml"] == pytest.approx(ml(truth.sum())), (
            uid.name
        )


# ------------------------------------------------------------------ outputs (item 9), inputs
def test_output_folder_is_the_report_whole(tmp_path: Path) -> None:
    from hemato.data.readers.nifti import window_hu

    hu, _ = head()
    write_dicom_series(tmp_path / "dcm", hu, spacing=SP)
    run(tmp_path / "dcm", tmp_path / "out")
    assert (tmp_path / "out" / "mask.nii.gz").is_file()
    for k in range(len(hu)):
        write_png(tmp_path / "png" / f"{k}.png", window_hu(hu[k]))
    run(tmp_path / "png", tmp_path / "out")
    assert not (tmp_path / "out" / "mask.nii.gz").exists() and (tmp_path / "out" / "mask").is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("x")
    with pytest.raises(InputError, match="not an empty folder or an earlier hemato report"):
        run(tmp_path / "dcm", tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.docx").exists()


def test_a_folder_of_several_patients_is_refused(tmp_path: Path) -> None:
    img = np.zeros((64, 64), np.uint8)
    for name in ("077_20", "077_21", "081_13", "081_14"):
        write_png(tmp_path / "mix" / f"{name}.png", img)
    with pytest.raises(InputError, match=r"slices of 2 patients \('077', '081'\)"):
        run(tmp_path / "mix", tmp_path / "o")


def test_cli_slice_spacing_flag_and_cuda_on_cpu(tmp_path: Path) -> None:
    hu, truth = head()
    write_dicom_series(tmp_path / "sc", hu, spacing=SP, with_ipp=False)
    with pytest.raises(InputError, match="--device cuda"):
        if torch.cuda.is_available():
            raise InputError(tmp_path, "--device cuda skipped: a GPU is present")
        run(tmp_path / "sc", tmp_path / "o", device="cuda")
    r = run(tmp_path / "sc", tmp_path / "o", thickness=2.5)
    assert r["slice_spacing_mm"] == 2.5 and r["geometry_source"]["thickness"] == "--slice-spacing"
    # the real CLI spells it --slice-spacing (its own model: the default weights)
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.predict", "--help"], capture_output=True, text=True, timeout=60
    )
    assert "--slice-spacing" in proc.stdout and "--intensity" in proc.stdout and "--series" in proc.stdout
    assert json.loads((tmp_path / "o" / "report.json").read_text())["slice_spacing_mm"] == 2.5


def test_one_patient_manifest_with_colour_masks_predicts(tmp_path: Path) -> None:
    import cv2

    from hemato.data.readers.nifti import window_hu

    hu, truth = head()
    rows = ["patient,slice_index,image,mask,spacing_row_mm,spacing_col_mm,slice_spacing_mm"]
    for k in range(len(hu)):
        write_png(tmp_path / "ds" / f"i{k}.png", window_hu(hu[k]))
        colour = np.zeros((64, 64, 3), np.uint8)
        colour[truth[k]] = (0, 0, 255)  # a BHSD-style colour class mask
        cv2.imwrite(str(tmp_path / "ds" / f"m{k}.png"), colour)
        rows.append(f"P,{k},i{k}.png,m{k}.png,0.5,0.5,5")
    (tmp_path / "ds" / "slices.csv").write_text("\n".join(rows) + "\n")
    r = run(tmp_path / "ds" / "slices.csv", tmp_path / "o")  # the masks are not read for prediction
    assert r["volume_ml"] == pytest.approx(ml(truth.sum()))


def test_cohort_batch_lists_failures_and_resumes(tmp_path: Path) -> None:
    import os

    hu, truth = head()
    write_dicom_series(tmp_path / "cohort" / "Doe_Jane", hu, spacing=SP)
    write_nifti(tmp_path / "cohort" / "case2.nii.gz", hu, spacing=SP, thickness=5.0)
    (tmp_path / "cohort" / "broken.nii.gz").write_bytes(b"\x1f\x8b garbage")
    out = tmp_path / "out"
    t = P.predict_cohort("model.pt", tmp_path / "cohort", out, progress=False)
    assert sorted(t["status"]) == ["error", "ok", "ok"]
    bad = t[t["status"] == "error"].iloc[0]
    assert "not a readable NIfTI" in bad["error"] and "broken.nii.gz" in bad["error"]
    good = t[t["status"] == "ok"]
    assert np.allclose(good["volume_ml"].astype(float), ml(truth.sum()))
    assert all(n.startswith("anon-") for n in t["scan"]) and not any("Doe" in p.name for p in out.rglob("*"))
    summary = out / "summary.csv"
    assert summary.is_file() and len(summary.read_text().splitlines()) == 4
    # resume: finished scans are not redone; a changed input is
    t2 = P.predict_cohort("model.pt", tmp_path / "cohort", out, progress=False)
    assert sorted(t2["status"]) == ["done before", "done before", "error"]
    nii = tmp_path / "cohort" / "case2.nii.gz"
    os.utime(nii, ns=(nii.stat().st_atime_ns, nii.stat().st_mtime_ns + 10**9))
    t3 = P.predict_cohort("model.pt", tmp_path / "cohort", out, progress=False)
    assert sorted(t3["status"]) == ["done before", "error", "ok"]


def test_dicom_seg_reads_back_onto_the_same_voxels(tmp_path: Path) -> None:
    import pydicom

    from hemato.data.readers.dicom import read_dicom_series
    from hemato.data.readers.dicom_seg import read_dicom_seg

    hu, truth = head()
    write_dicom_series(tmp_path / "dcm", hu, spacing=SP)
    r = run(tmp_path / "dcm", tmp_path / "o", dicom_seg=True)
    seg = tmp_path / "o" / "seg.dcm"
    ds = pydicom.dcmread(seg)
    assert ds.Modality == "SEG" and ds.SegmentSequence[0].SegmentLabel == "intracranial hemorrhage"
    geo = read_dicom_series(tmp_path / "dcm").dicom_geometry
    back = read_dicom_seg(seg, geo["datasets"])
    assert back.shape == truth.shape and (back == truth).all() and r["volume_ml"] == pytest.approx(ml(truth.sum()))
    with pytest.raises(InputError, match="--dicom-seg needs a DICOM series"):
        write_nifti(tmp_path / "s.nii.gz", hu, spacing=SP, thickness=5.0)
        run(tmp_path / "s.nii.gz", tmp_path / "o2", dicom_seg=True)


def test_report_carries_confidence_and_input_qc(tmp_path: Path) -> None:
    hu, truth = head()
    write_dicom_series(tmp_path / "dcm", hu, spacing=SP, thickness=1.0, positions=[k * 1.0 for k in range(len(hu))])
    r = run(tmp_path / "dcm", tmp_path / "o")
    assert r["confidence"]["unsure"] is False and r["confidence"]["bleeds"][0]["voxels"] == truth.sum()
    assert any("only 6 slices" in f for f in r["input_qc"]) and any("slice spacing 1 mm" in f for f in r["input_qc"])


def test_one_patient_of_a_manifest_with_patient(tmp_path: Path) -> None:
    from hemato.data.readers.nifti import window_hu

    hu, truth = head()
    rows = ["patient,slice_index,image,mask,spacing_row_mm,spacing_col_mm,slice_spacing_mm"]
    for pid in ("A", "B"):
        for k in range(len(hu)):
            write_png(tmp_path / "ds" / f"{pid}{k}.png", window_hu(hu[k]))
            rows.append(f"{pid},{k},{pid}{k}.png,,0.5,0.5,5")
    (tmp_path / "ds" / "slices.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"manifest lists 2 patients \(A, B\); pick one with --patient ID"):
        run(tmp_path / "ds" / "slices.csv", tmp_path / "o")
    assert run(tmp_path / "ds" / "slices.csv", tmp_path / "o", manifest_patient="B")["volume_ml"] == pytest.approx(
        ml(truth.sum())
    )
    with pytest.raises(InputError, match="no patient 'C'"):
        run(tmp_path / "ds" / "slices.csv", tmp_path / "o2", manifest_patient="C")
