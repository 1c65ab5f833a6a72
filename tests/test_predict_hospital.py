"""Scans as hospitals send them (issue 27): each input variant is measured, flagged, reported
as a lower bound or refused in one line; a miss never reads like a measurement.

The network is test_predict_trust's exact "threshold network" (windowed blood-bright pixels
-> bleed), so the right answer of every scan is known and the predict path is what is tested.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hemato.weights.load as W
from hemato.data.readers.errors import InputError
from hemato.engine import Contract
from tests.data.files import sample_hu, write_nifti
from tests.test_predict_trust import SP, _bright_forward, head, ml, run, threshold_network  # noqa: F401


def _with_contract(monkeypatch: pytest.MonkeyPatch, validation: dict | None = None, **contract) -> None:
    """The threshold network under another contract (and packed validation figures)."""

    def load(path, device="cpu", channels_last=None, precision="32"):
        ident = {"checkpoint": str(path), "sha256": "0" * 64, "model": {"name": "test"}}
        if validation:
            ident["provenance"] = {"validation": validation}
        return W.LoadedModel(_bright_forward, 64, ident, None, Contract(input_size=64, **contract))

    monkeypatch.setattr(W, "load_model", load)


# ------------------------------------------------------------------ item 9: no silent miss
def test_nothing_found_is_no_bleed_found_not_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found_by_size = [
        {"size": "< 2 ml", "n": 6, "found": 1},
        {"size": "2-10 ml", "n": 12, "found": 7},
        {"size": "> 10 ml", "n": 10, "found": 9},
    ]
    validation = {
        "dice_patient": 0.5,
        "dice_patient_ci": [0.4, 0.6],
        "fp_patients": 2,
        "n_patients_with_bleed": 28,
        "n_patients_without_bleed": 32,
        "found_by_size": found_by_size,
        "found_rule": "Dice >= 0.2",
    }
    _with_contract(monkeypatch, validation=validation)
    hu, _ = head(blood=(slice(0, 0), slice(0, 0), slice(0, 0)))  # no blood anywhere
    write_nifti(tmp_path / "clean.nii.gz", hu, spacing=SP, thickness=5.0)
    r = run(tmp_path / "clean.nii.gz", tmp_path / "o")
    assert r["volume_status"] == "no_bleed_found" and r["volume_ml"] == 0.0
    assert r["finding"].startswith("no bleed found by this model")
    assert "1 of 6 bleeds < 2 ml, 7 of 12 bleeds 2-10 ml, 9 of 10 bleeds > 10 ml" in r["finding"]
    page = (tmp_path / "o" / "report.html").read_text()
    assert "no bleed found by this model" in page and "Status: no_bleed_found" in page
    # a found bleed is "ok", and its finding says how many
    hu, _ = head()
    write_nifti(tmp_path / "bleed.nii.gz", hu, spacing=SP, thickness=5.0)
    r = run(tmp_path / "bleed.nii.gz", tmp_path / "o2")
    assert r["volume_status"] == "ok" and r["finding"] == "1 bleed(s) found by this model"


def test_the_cli_says_no_bleed_found(tmp_path: Path) -> None:
    hu, _ = head(blood=(slice(0, 0), slice(0, 0), slice(0, 0)))
    write_nifti(tmp_path / "clean.nii.gz", hu, spacing=SP, thickness=5.0)
    code = (
        "import sys, hemato.predict as P, hemato.weights.load as W; from tests.test_predict_hospital import _cli_model; "
        "W.load_model = _cli_model; sys.exit(P.main(sys.argv[1:]))"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--checkpoint",
            "m.pt",
            "--input",
            str(tmp_path / "clean.nii.gz"),
            "--output",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stderr
    assert "0.00 ml (no bleed found by this model:" in out.stdout
    assert "not recorded" in out.stdout  # this model carries no sensitivity figures: said so


def _cli_model(path, device="cpu", channels_last=None, precision="32"):
    return W.LoadedModel(
        _bright_forward, 64, {"checkpoint": str(path), "sha256": "0" * 64}, None, Contract(input_size=64)
    )


def test_dropped_regions_are_measured_not_called_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hu, truth = head()  # one bleed of 420 voxels (0.53 ml at 0.5 x 0.5 x 5 mm)
    _with_contract(monkeypatch, min_component_px=10_000)  # a rule no bleed here passes
    write_nifti(tmp_path / "s.nii.gz", hu, spacing=SP, thickness=5.0)
    r = run(tmp_path / "s.nii.gz", tmp_path / "o")
    dl = r["detection_limit"]
    assert r["volume_status"] == "no_bleed_found" and dl["dropped_regions"] == 1
    assert dl["dropped_voxels"] == dl["dropped_largest_voxels"] == truth.sum()
    assert dl["dropped_ml"] == pytest.approx(ml(truth.sum()))
    (w,) = [w for w in r["warnings"] if "candidate region" in w]
    assert f"together {ml(truth.sum()):.2f} ml, the largest {ml(truth.sum()):.2f} ml" in w
    assert "missed" in w and "cannot be ruled out" not in w


# ------------------------------------------------------------------ item 5: NIfTI qform / sform
def _nifti(path: Path, hu: np.ndarray, sform: np.ndarray | None, qform: np.ndarray | None, pixdim=None) -> None:
    import nibabel as nib

    arr = np.transpose(hu[:, ::-1, ::-1], (2, 1, 0)).astype(np.int16)
    img = nib.Nifti1Image(arr, None)
    if qform is not None:
        img.set_qform(qform, code=1)
    else:
        img.set_qform(None, code=0)
    if sform is not None:
        img.set_sform(sform, code=2)
    else:
        img.set_sform(None, code=0)
    if pixdim is not None:
        img.header.set_zooms(pixdim)
    nib.save(img, str(path))


def test_nifti_sform_only_gives_the_geometry(tmp_path: Path) -> None:
    hu, truth = head()
    # sform says 0.5 x 0.5 x 5 mm; the header's pixdim (qform unset) says 0.9 mm pixels
    _nifti(tmp_path / "s.nii.gz", hu, np.diag([SP[1], SP[0], 5.0, 1.0]), None, pixdim=(0.9, 0.9, 5.0))
    r = run(tmp_path / "s.nii.gz", tmp_path / "o")
    assert r["spacing_mm"] == pytest.approx(list(SP)) and r["volume_ml"] == pytest.approx(ml(truth.sum()))


def test_nifti_qform_and_sform_that_disagree_are_refused(tmp_path: Path) -> None:
    hu, truth = head()
    _nifti(tmp_path / "d.nii.gz", hu, np.diag([SP[1], SP[0], 5.0, 1.0]), np.diag([0.9, 0.9, 5.0, 1.0]))
    with pytest.raises(
        InputError,
        match=r"qform and sform disagree by .* mm .*qform voxels 0\.9 x 0\.9 x 5 mm, sform 0\.5 x 0\.5 x 5 mm",
    ):
        run(tmp_path / "d.nii.gz", tmp_path / "o")
    # agreeing within rounding: measured
    _nifti(tmp_path / "a.nii.gz", hu, np.diag([SP[1], SP[0], 5.0, 1.0]), np.diag([SP[1] + 1e-5, SP[0], 5.0, 1.0]))
    assert run(tmp_path / "a.nii.gz", tmp_path / "o2")["volume_ml"] == pytest.approx(ml(truth.sum()), rel=1e-3)


# ------------------------------------------------------------------ real slices
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "ctich-sample"


# ------------------------------------------------------------------ item 7: secondary captures
def test_secondary_capture_needs_assume_ct_and_then_measures(tmp_path: Path) -> None:
    from tests.data.files import write_dicom_series

    hu = sample_hu()
    write_dicom_series(tmp_path / "ot", hu, spacing=(0.45, 0.45), modality="OT", with_ipp=False)
    with pytest.raises(InputError, match=r"Modality is OT \(a secondary capture\), not CT: .*give --assume-ct"):
        run(tmp_path / "ot", tmp_path / "o1", thickness=5.0)
    r = run(tmp_path / "ot", tmp_path / "o2", thickness=5.0, assume_ct=True)
    write_dicom_series(tmp_path / "ct", hu, spacing=(0.45, 0.45), modality="CT", with_ipp=False)
    control = run(tmp_path / "ct", tmp_path / "o3", thickness=5.0)
    assert control["volume_ml"] > 0 and r["volume_ml"] == pytest.approx(control["volume_ml"])
    assert r["geometry_source"]["modality"] == "OT read as CT (--assume-ct)"
    assert any("Modality is OT read as CT" in w for w in r["warnings"])
    write_dicom_series(tmp_path / "mr", hu, spacing=(0.45, 0.45), modality="MR", with_ipp=False)
    with pytest.raises(InputError, match="Modality is MR, not CT"):  # a flag for captures, not for MR
        run(tmp_path / "mr", tmp_path / "o4", thickness=5.0, assume_ct=True)


# ------------------------------------------------------------------ item 4: coverage
def test_a_bleed_cut_by_the_scan_is_a_lower_bound(tmp_path: Path) -> None:
    hu, truth = head(8, (slice(0, 3), slice(20, 30), slice(22, 36)))  # bleed on the first slice
    write_nifti(tmp_path / "cut.nii.gz", hu, spacing=SP, thickness=5.0)
    r = run(tmp_path / "cut.nii.gz", tmp_path / "o1")
    assert r["volume_status"] == "lower_bound" and r["volume_ml"] == pytest.approx(ml(truth.sum()))
    assert r["coverage"]["slices"] == ["0"] and r["coverage"]["edges"] == []
    assert any(
        w.startswith("the volume is a lower bound: a bleed reaches the scan's first slice") for w in r["warnings"]
    )
    assert "Status: lower_bound" in (tmp_path / "o1" / "report.html").read_text()
    # the same bleed one slice further in: measured, ok
    hu, truth = head(8, (slice(1, 4), slice(20, 30), slice(22, 36)))
    write_nifti(tmp_path / "in.nii.gz", hu, spacing=SP, thickness=5.0)
    r = run(tmp_path / "in.nii.gz", tmp_path / "o2")
    assert r["volume_status"] == "ok" and r["coverage"] is None


def test_a_bleed_cut_by_the_field_of_view_is_a_lower_bound(tmp_path: Path) -> None:
    hu, truth = head(6, (slice(1, 4), slice(26, 34), slice(50, 58)))  # a bleed at the head's right side
    # a field of view 8 pixels off to the left: it cuts the head (and the bleed) on the right
    shifted = np.full_like(hu, -1000.0)
    shifted[:, :, 8:] = hu[:, :, :-8]
    write_nifti(tmp_path / "fov.nii.gz", shifted, spacing=SP, thickness=5.0)
    r = run(tmp_path / "fov.nii.gz", tmp_path / "o")
    assert r["volume_status"] == "lower_bound" and r["coverage"]["edges"] == ["right"]
    assert r["volume_ml"] == pytest.approx(ml(truth[:, :, :-8].sum()))  # what the frame holds of it


# ------------------------------------------------------------------ item 6: body part
def abdomen_hu(z: int = 8) -> np.ndarray:
    """(Z, 128, 128) HU of an abdomen-like section at 3 mm pixels (38 x 29 cm): fat, soft
    tissue and organs, a vertebra, no skull; a 'bleed-bright' organ (60 HU)."""
    yy, xx = np.mgrid[:128, :128]
    hu = np.full((z, 128, 128), -1000.0)
    body = ((yy - 64) / 48) ** 2 + ((xx - 64) / 63) ** 2 < 1
    hu[:, body] = -100.0  # fat
    hu[:, ((yy - 64) / 40) ** 2 + ((xx - 64) / 55) ** 2 < 1] = 40.0  # muscle and organs
    hu[:, ((yy - 55) / 12) ** 2 + ((xx - 40) / 15) ** 2 < 1] = 60.0  # liver-bright organ
    hu[:, ((yy - 92) / 7) ** 2 + ((xx - 64) / 7) ** 2 < 1] = 700.0  # vertebral body
    return hu


def test_a_scan_without_a_head_is_refused(tmp_path: Path) -> None:
    write_nifti(tmp_path / "abdomen.nii.gz", abdomen_hu(), spacing=(3.0, 3.0), thickness=5.0)
    with pytest.raises(InputError, match="larger than a head: not a head CT"):
        run(tmp_path / "abdomen.nii.gz", tmp_path / "o1")
    # without a pixel size (slices): the missing skull says it
    from hemato.data.readers.nifti import window_hu
    from tests.data.files import write_png

    for k, s in enumerate(abdomen_hu(6)):
        write_png(tmp_path / "png" / f"slice_{k:02d}.png", window_hu(s))
    with pytest.raises(InputError, match="no skull around the middle slices"):
        run(tmp_path / "png", tmp_path / "o2")


def test_every_real_head_passes_the_head_check() -> None:
    """The sample's real heads (patients 078, 080, 081) are heads (its 650 px exports at the
    pixel size of ct-ich's assumed 0.45 mm at 512 px)."""
    from hemato.data.readers.nifti import window_hu
    from hemato.scan_checks import not_a_head

    for pid in ("078", "080", "081"):
        img = window_hu(sample_hu(pid)).astype(np.uint8)
        px = 0.45 * 512 / img.shape[-1]
        assert not_a_head(img, (px, px)) is None, pid


def test_body_part_other_than_head_is_refused(tmp_path: Path) -> None:
    import pydicom

    from tests.data.files import write_dicom_series

    hu, truth = head()
    files = write_dicom_series(tmp_path / "chest", hu, spacing=SP)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.BodyPartExamined = "CHEST"
        ds.save_as(f)
    with pytest.raises(InputError, match="BodyPartExamined is CHEST: hemato measures head CT only"):
        run(tmp_path / "chest", tmp_path / "o")
    for f in files:
        ds = pydicom.dcmread(f)
        ds.BodyPartExamined = "HEAD"
        ds.save_as(f)
    assert run(tmp_path / "chest", tmp_path / "o2")["volume_ml"] == pytest.approx(ml(truth.sum()))


# ------------------------------------------------------------------ items 2 and 8: noise, intensity notes
def test_noise_is_estimated_and_flagged_and_plain_scans_are_not(tmp_path: Path) -> None:
    hu = sample_hu("081")
    write_nifti(tmp_path / "plain.nii.gz", hu, spacing=(0.354, 0.354), thickness=5.0)
    plain = run(tmp_path / "plain.nii.gz", tmp_path / "o1")
    assert plain["intensity"]["noise_hu"] < 4.0 and 25 <= plain["intensity"]["brain_median_hu"] <= 45
    assert not [q for q in plain["input_qc"] if "noise" in q or "window" in q or "median" in q]
    noisy = hu + np.random.default_rng(0).normal(0, 10, hu.shape) * (hu > -1000)
    write_nifti(tmp_path / "noisy.nii.gz", noisy, spacing=(0.354, 0.354), thickness=5.0)
    r = run(tmp_path / "noisy.nii.gz", tmp_path / "o2")
    assert r["intensity"]["noise_hu"] > 6.0
    assert any(q.startswith("image noise ~") and "above the training scans' 1.0-2.6 HU" in q for q in r["input_qc"])
    shifted = np.where(hu > -1000, hu + 30, hu)  # a calibration offset of 30 HU
    write_nifti(tmp_path / "offset.nii.gz", shifted, spacing=(0.354, 0.354), thickness=5.0)
    r = run(tmp_path / "offset.nii.gz", tmp_path / "o3")
    assert any(q.startswith("the brain's median is") and "not HU" in q for q in r["input_qc"])


# ------------------------------------------------------------------ item 3: field of view
def _at_pixel_size(hu: np.ndarray, src_mm: float, mm: float, side: int = 512) -> np.ndarray:
    """Slices of ``src_mm`` pixels resampled to ``mm`` pixels on a ``side`` px frame (air
    around, centred): the same head as scanned with another field of view."""
    import cv2

    n = round(hu.shape[-1] * src_mm / mm)
    out = np.full((hu.shape[0], side, side), -1000.0)
    for k, s in enumerate(hu):
        r = cv2.resize(
            s.astype(np.float32), (n, n), interpolation=cv2.INTER_AREA if n < hu.shape[-1] else cv2.INTER_LINEAR
        )
        a = (side - n) // 2
        if a >= 0:
            out[k, a : a + n, a : a + n] = r
        else:
            out[k] = r[-a : -a + side, -a : -a + side]
    return out


def test_the_network_sees_the_head_at_its_training_size_whatever_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the contract's field_mm, a real head scanned at 0.4, 0.7 or 1.0 mm pixels reaches
    the network at the same size (within 2 network pixels); without it, its size follows the
    scanner's field of view (x 2.5 from 0.4 to 1.0 mm)."""
    import torch

    seen: list[int] = []

    def probe(x: torch.Tensor) -> torch.Tensor:
        head = (x[:, x.shape[1] // 2] > 0.05).any(dim=0)  # (h, w): any slice of the batch holds head
        cols = torch.nonzero(head.any(0)).flatten()
        seen.append(int(cols[-1] - cols[0] + 1))
        return _bright_forward(x)

    probe.size_divisor = 32  # type: ignore[attr-defined]
    src_mm = 0.45 * 512 / 650  # the sample's 650 px exports of ct-ich's (assumed) 0.45 mm at 512
    from hemato.data.readers.nifti import window_hu
    from hemato.scan_checks import _outline

    hu = sample_hu("081")[5:9]
    for k in range(len(hu)):  # the head alone (the export shows the head holder too)
        hu[k][~_outline(window_hu(hu[k]).astype(np.uint8))] = -1000.0
    widths = {}
    for field_mm in (230.4, None):
        for mm in (0.4, 0.7, 1.0):

            def load(path, device="cpu", channels_last=None, precision="32", f=field_mm):
                con = Contract(input_size=256, field_mm=f)
                return W.LoadedModel(probe, 256, {"checkpoint": "x", "sha256": "0" * 64}, None, con)

            monkeypatch.setattr(W, "load_model", load)
            write_nifti(tmp_path / "s.nii.gz", _at_pixel_size(hu, src_mm, mm), spacing=(mm, mm), thickness=5.0)
            seen.clear()
            run(tmp_path / "s.nii.gz", tmp_path / f"o_{field_mm}_{mm}", batch_size=8)
            widths[(field_mm, mm)] = max(seen)
    fixed = [widths[(230.4, mm)] for mm in (0.4, 0.7, 1.0)]
    assert max(fixed) - min(fixed) <= 2, widths
    free = [widths[(None, mm)] for mm in (0.4, 0.7, 1.0)]
    assert free[0] / free[2] == pytest.approx(2.5, rel=0.1), widths


# ------------------------------------------------------------------ item 1: kernels
def _bone_kernel(hu: np.ndarray, seed: int = 0) -> np.ndarray:
    """A sharp-kernel look of the same slices: unsharp-masked edges and 25 HU of noise."""
    from scipy import ndimage

    sharp = hu + 1.5 * (hu - ndimage.gaussian_filter(hu, (0, 1.5, 1.5)))
    noisy = sharp + np.random.default_rng(seed).normal(0, 25, hu.shape)
    return np.where(hu > -1000, np.clip(noisy, -1000, 3000), -1000.0)


def test_the_soft_kernel_series_is_picked_and_a_bone_kernel_alone_refused(tmp_path: Path) -> None:
    from tests.data.files import write_dicom_series

    hu = sample_hu("081")
    soft = {"ConvolutionKernel": "Hr38", "SeriesDescription": "Head 5mm Hr38"}
    bone = {"ConvolutionKernel": ["H70h", "2"], "SeriesDescription": "Head 5mm bone"}
    write_dicom_series(tmp_path / "soft", hu, spacing=(0.354, 0.354), series="1.2.3.1", tags=soft)
    control = run(tmp_path / "soft", tmp_path / "o0")
    assert control["geometry_source"]["kernel"] == "Hr38 (soft)" and "series" not in control["geometry_source"]
    # both reconstructions in one folder, as a PACS export sends them
    write_dicom_series(tmp_path / "both", hu, spacing=(0.354, 0.354), series="1.2.3.1", tags=soft, prefix="S")
    write_dicom_series(
        tmp_path / "both", _bone_kernel(hu), spacing=(0.354, 0.354), series="1.2.3.2", tags=bone, prefix="B"
    )
    r = run(tmp_path / "both", tmp_path / "o1")
    assert r["volume_ml"] == pytest.approx(control["volume_ml"])
    assert r["geometry_source"]["series"].startswith("1.2.3.1: a soft-kernel reconstruction preferred to 1.2.3.2")
    assert "kernel H70h/2" in r["geometry_source"]["series"]
    # the bone kernel alone: refused, naming the kernel
    write_dicom_series(tmp_path / "bone", _bone_kernel(hu), spacing=(0.354, 0.354), series="1.2.3.2", tags=bone)
    with pytest.raises(
        InputError, match=r"sharp-kernel reconstruction \(ConvolutionKernel H70h/2\).*give the soft-kernel series"
    ):
        run(tmp_path / "bone", tmp_path / "o2")


@pytest.mark.parametrize(
    "kernel,description,kind",
    [
        ("STANDARD", "", "soft"),
        ("BONEPLUS", "", "sharp"),
        ("H30s", "", "soft"),
        ("Hr64", "", "sharp"),
        ("J70h", "", "sharp"),
        ("FC23", "", "soft"),
        ("FC30", "", "sharp"),
        ("UB", "", "soft"),
        ("YC", "", "sharp"),
        ("", "CT HEAD BONE WINDOW", "sharp"),
        ("", "Brain 5 mm", "soft"),
        ("H50s", "", None),
        ("", "", None),
    ],
)
def test_kernel_kinds(kernel: str, description: str, kind: str | None) -> None:
    from hemato.data.readers.dicom_kernel import kernel_kind

    assert kernel_kind(kernel, description) == kind


# ------------------------------------------------------------------ DICOM SR (issue 25, item 1)
def test_dicom_sr_holds_the_reports_numbers(tmp_path: Path) -> None:
    import pydicom

    from hemato.dicom_sr import read_dicom_sr
    from tests.data.files import write_dicom_series

    hu, truth = head(8, (slice(2, 5), slice(16, 26), slice(14, 30)))
    hu[3:6, 36:44, 36:48] = 70.0  # a second bleed
    write_dicom_series(tmp_path / "ct", hu, spacing=SP, series="1.2.3.7")
    r = run(tmp_path / "ct", tmp_path / "o", dicom_sr=True)
    sr_path, seg_path = tmp_path / "o" / "sr.dcm", tmp_path / "o" / "seg.dcm"
    back = read_dicom_sr(sr_path)
    assert back["volume_ml"] == pytest.approx(r["volume_ml"]) and back["abc2_ml"] == pytest.approx(
        r["abc2"]["volume_ml"]
    )
    assert back["status"] == "ok" and back["unsure"] is False
    assert len(back["bleeds"]) == 2
    for got, want in zip(back["bleeds"], r["abc2"]["bleeds"]):
        assert got["abc2_ml"] == pytest.approx(want["volume_ml"]) and got["planimetric_ml"] == pytest.approx(
            want["planimetric_ml"]
        )
        assert [got[k] for k in ("A_mm", "B_mm", "C_mm")] == pytest.approx([want[k] for k in ("A_mm", "B_mm", "C_mm")])
    sr, seg = pydicom.dcmread(sr_path), pydicom.dcmread(seg_path)
    refs = {
        str(i.ReferencedSOPInstanceUID)
        for s in sr.CurrentRequestedProcedureEvidenceSequence
        for se in s.ReferencedSeriesSequence
        for i in se.ReferencedSOPSequence
    }
    assert str(seg.SOPInstanceUID) in refs and str(sr.StudyInstanceUID) == str(seg.StudyInstanceUID)
    with pytest.raises(InputError, match="--dicom-sr needs a DICOM series"):
        write_nifti(tmp_path / "n.nii.gz", hu, spacing=SP, thickness=5.0)
        run(tmp_path / "n.nii.gz", tmp_path / "o2", dicom_sr=True)


def test_dicom_sr_of_a_miss_says_no_bleed_found(tmp_path: Path) -> None:
    from hemato.dicom_sr import read_dicom_sr
    from tests.data.files import write_dicom_series

    hu, _ = head(blood=(slice(0, 0), slice(0, 0), slice(0, 0)))
    write_dicom_series(tmp_path / "ct", hu, spacing=SP)
    run(tmp_path / "ct", tmp_path / "o", dicom_sr=True)
    back = read_dicom_sr(tmp_path / "o" / "sr.dcm")
    assert back["status"] == "no_bleed_found" and back["volume_ml"] == 0.0 and back["bleeds"] == []


def test_two_patients_of_one_manifest_get_two_pseudonyms(tmp_path: Path) -> None:
    a = run(SAMPLE / "slices.csv", tmp_path / "a", manifest_patient="080")
    b = run(SAMPLE / "slices.csv", tmp_path / "b", manifest_patient="081")
    assert a["patient"] != b["patient"] and a["patient"].startswith("anon-")
    assert (
        run(SAMPLE / "slices.csv", tmp_path / "c", manifest_patient="080", keep_names=True)["patient"]
        == "slices.csv:080"
    )
