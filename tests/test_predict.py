"""Round trip import -> train -> predict on the shipped ct-ich sample; NIfTI/DICOM/slice
inputs; ONNX gives the same numbers; every bad input ends in one clear line and no report."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hemato.data.readers.errors import InputError
from hemato.predict import predict
from tests.data.files import write_dicom_series, write_nifti, write_png

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "ctich-sample"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    # import the raw sample with the importer (5 mm thickness, spacing unknown) ...
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hemato.data.convert",
            "images",
            "--images",
            str(SAMPLE / "images"),
            "--masks",
            str(SAMPLE / "masks"),
            "--thickness",
            "5",
            "--out",
            str(tmp / "ds"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    # ... and train a few steps on it
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hemato.run",
            "data=manifest",
            f"data.manifest={tmp / 'ds' / 'slices.csv'}",
            "data.input_size=64",
            "data.samples_per_epoch=16",
            "data.test_fraction=0.2",
            "data.val_fraction=0.25",
            "trainer.max_epochs=1",
            "trainer.precision=32-true",  # not the timed auto choice: the same weights under any load
            "model.base_channels=4",
            "trainer.enable_progress_bar=false",
            f"paths.runs_dir={tmp}/runs",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = next((tmp / "runs").rglob("best.ckpt"))
    metrics = json.loads((ckpt.parents[1] / "metrics.json").read_text())
    assert metrics["test"]["n_slices"] > 0 and np.isnan(metrics["test"]["volume_mae_ml"])  # spacing unknown: no ml
    return ckpt


@pytest.fixture()
def one_patient(tmp_path: Path) -> Path:
    """Patient 081's 15 consecutive sample slices in a folder of their own."""
    import shutil

    d = tmp_path / "p081"
    d.mkdir()
    for f in sorted((SAMPLE / "images").glob("081_*.jpg")):
        shutil.copy(f, d / f.name)
    return d


def _head(hu_inside: np.ndarray) -> np.ndarray:
    """Put a skull (1000 HU) and air (-1000 HU) around a synthetic volume, as a real head
    CT has (predict refuses a scan without a skull)."""
    z, h, w = hu_inside.shape
    yy, xx = np.mgrid[:h, :w]
    r2 = (yy - h / 2) ** 2 + (xx - w / 2) ** 2
    out = hu_inside.copy()
    out[:, r2 > (0.44 * min(h, w)) ** 2] = 1000.0
    out[:, r2 > (0.48 * min(h, w)) ** 2] = -1000.0
    return out


def _no_report(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


def test_slice_folder_without_spacing_has_no_volume(checkpoint: Path, tmp_path: Path, one_patient: Path) -> None:
    r = predict(checkpoint, one_patient, tmp_path / "out")
    assert r["volume_ml"] is None and r["volume_status"].startswith(
        "volume unavailable: pixel spacing and slice spacing unknown"
    )
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["n_slices"] == 15 and len(rep["slices"]) == 15 and rep["slices"][0]["area_mm2"] is None
    assert len(list((tmp_path / "out" / "mask").glob("*.png"))) == 15
    assert len(list((tmp_path / "out" / "overlays").glob("*.png"))) == rep["n_bleed_slices"]
    r2 = predict(checkpoint, one_patient, tmp_path / "out2", spacing=(0.45, 0.45), thickness=5.0)
    areas = sum(s["area_px"] for s in r2["slices"])
    assert r2["volume_ml"] == pytest.approx(areas * 0.45 * 0.45 * 5 / 1000)
    assert r2["geometry_source"] == {"spacing": "--spacing", "thickness": "--slice-spacing"}
    assert r2["inference"]["crop_to_head"] is True and r2["inference"]["threads"] >= 1
    row = pd.read_csv(tmp_path / "out2" / "report.csv").iloc[0]
    assert row["volume_ml"] == pytest.approx(r2["volume_ml"]) and row["checkpoint_sha256"] == r2["model"]["sha256"]


def test_head_crop_matches_full_frames_on_real_slices(checkpoint: Path, tmp_path: Path, one_patient: Path) -> None:
    # real CT-ICH slices: the head-cropped path (default) against full frames
    a = predict(checkpoint, one_patient, tmp_path / "a", spacing=(0.45, 0.45), thickness=5.0)
    b = predict(checkpoint, one_patient, tmp_path / "b", spacing=(0.45, 0.45), thickness=5.0, crop=False)
    assert (a["inference"]["crop_to_head"], b["inference"]["crop_to_head"]) == (True, False)
    pa = np.array([s["area_px"] for s in a["slices"]])
    pb = np.array([s["area_px"] for s in b["slices"]])
    # a 1-epoch model: borders of the crop may flip a few low-confidence pixels, not more
    assert np.abs(pa - pb).sum() <= max(20, 0.05 * pb.sum())


def test_nifti_input_mask_in_input_geometry(checkpoint: Path, tmp_path: Path) -> None:
    import nibabel as nib

    hu = np.full((4, 64, 64), 30.0)
    hu[1:3, 20:40, 20:40] = 70.0
    write_nifti(tmp_path / "scan.nii.gz", _head(hu), spacing=(0.5, 0.6), thickness=5.0)
    r = predict(checkpoint, tmp_path / "scan.nii.gz", tmp_path / "out")
    assert (
        r["spacing_mm"] == pytest.approx([0.5, 0.6])
        and r["slice_spacing_mm"] == pytest.approx(5.0)
        and r["geometry_source"]["spacing"] == "NIfTI header"
    )
    src, m = nib.load(tmp_path / "scan.nii.gz"), nib.load(tmp_path / "out" / "mask.nii.gz")
    assert m.shape == src.shape and np.allclose(m.affine, src.affine)
    assert np.asarray(m.dataobj).sum() * 0.5 * 0.6 * 5 / 1000 == pytest.approx(r["volume_ml"])


def test_dicom_input_and_no_phi_in_outputs(checkpoint: Path, tmp_path: Path) -> None:
    hu = np.full((5, 64, 64), 30.0)
    hu[1:4, 10:30, 20:44] = 72.0
    write_dicom_series(
        tmp_path / "Doe_Jane", _head(hu), spacing=(0.45, 0.45), thickness=2.5, name="Doe^Jane", pid="PID-12345"
    )
    r = predict(checkpoint, tmp_path / "Doe_Jane", tmp_path / "out")  # folder named after the patient
    assert r["patient"].startswith("anon-")
    assert r["slice_spacing_mm"] == pytest.approx(2.5) and r["geometry_source"]["spacing"] == "DICOM PixelSpacing"
    assert (tmp_path / "out" / "mask.nii.gz").is_file()
    for f in (tmp_path / "out").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            for phi in (b"Doe", b"Jane", b"PID-12345", b"19500101"):
                assert phi not in data, (f, phi)


def test_onnx_export_gives_the_same_numbers(checkpoint: Path, tmp_path: Path, one_patient: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.export", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "m.onnx")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    a = predict(
        checkpoint, one_patient, tmp_path / "a", spacing=(0.45, 0.45), thickness=5.0, crop=False, precision="32"
    )  # ONNX runs fp32
    b = predict(tmp_path / "m.onnx", one_patient, tmp_path / "b", spacing=(0.45, 0.45), thickness=5.0)
    assert b["model"]["format"] == "onnx"
    assert b["inference"]["crop_to_head"] is False  # a fixed-size ONNX graph sees full frames
    pa = np.array([s["area_px"] for s in a["slices"]])
    pb = np.array([s["area_px"] for s in b["slices"]])
    assert np.abs(pa - pb).sum() <= max(2, 0.001 * pa.sum())  # float noise may flip a pixel at 0.5
    assert b["volume_ml"] == pytest.approx(a["volume_ml"], rel=1e-3, abs=1e-3)


def _cli(ckpt: Path, inp: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hemato.predict", "--checkpoint", str(ckpt), "--input", str(inp), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )


class _Evil:
    def __reduce__(self):
        return (Path("/tmp/hemato_pwned").touch, ())


def _bad_inputs(tmp: Path, ckpt: Path) -> dict[str, tuple[Path, Path, str]]:
    """name -> (checkpoint, input, expected text in the error)."""
    cases = {}
    cases["missing"] = (ckpt, tmp / "nope", "input does not exist")
    (tmp / "empty").mkdir()
    cases["empty folder"] = (ckpt, tmp / "empty", "no DICOM files and no PNG/JPG slices")
    write_png(tmp / "corrupt" / "1.png", np.zeros((64, 64), np.uint8))
    (tmp / "corrupt" / "2.png").write_bytes((tmp / "corrupt" / "1.png").read_bytes()[:40])
    cases["truncated png"] = (ckpt, tmp / "corrupt", "2.png")
    write_png(tmp / "sizes" / "1.png", np.zeros((64, 64), np.uint8))
    write_png(tmp / "sizes" / "2.png", np.zeros((32, 32), np.uint8))
    cases["different sizes"] = (ckpt, tmp / "sizes", "differs from the other slices")
    nan = np.full((3, 64, 64), 30.0)
    nan[1, 5, 5] = np.nan
    write_nifti(tmp / "nan.nii", nan, dtype=np.float32)
    cases["nan voxels"] = (ckpt, tmp / "nan.nii", "NaN/inf")
    (tmp / "bad.nii.gz").write_bytes(b"\x1f\x8b garbage")
    cases["corrupt nifti"] = (ckpt, tmp / "bad.nii.gz", "not a readable NIfTI")
    write_dicom_series(tmp / "dup", np.zeros((3, 64, 64)), positions=[0, 5, 5])
    cases["duplicate dicom position"] = (ckpt, tmp / "dup", "duplicate slice position")
    write_dicom_series(tmp / "gap", np.zeros((4, 64, 64)), positions=[0, 5, 15, 20])
    cases["missing dicom slice"] = (ckpt, tmp / "gap", "missing or uneven slice")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp / "other.ckpt")
    cases["not a hemato checkpoint"] = (tmp / "other.ckpt", SAMPLE / "images", "not a hemato model checkpoint")
    c = torch.load(ckpt, weights_only=True)
    c["hyper_parameters"]["model"]["base_channels"] = 8
    torch.save(c, tmp / "mismatch.ckpt")
    cases["weights of another size"] = (tmp / "mismatch.ckpt", SAMPLE / "images", "weights do not fit")
    with open(tmp / "evil.ckpt", "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    cases["malicious pickle"] = (tmp / "evil.ckpt", SAMPLE / "images", "refused")
    return cases


BAD = [
    "missing",
    "empty folder",
    "truncated png",
    "different sizes",
    "nan voxels",
    "corrupt nifti",
    "duplicate dicom position",
    "missing dicom slice",
    "not a hemato checkpoint",
    "weights of another size",
    "malicious pickle",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_a_clear_error_and_leaves_no_report(checkpoint: Path, tmp_path: Path, case: str) -> None:
    ckpt, inp, needle = _bad_inputs(tmp_path, checkpoint)[case]
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        predict(ckpt, inp, out)
    assert needle in str(err.value), str(err.value)
    assert str(err.value).startswith(str(inp if ckpt == checkpoint else ckpt)) or str(inp) in str(err.value)
    _no_report(out)
    assert not Path("/tmp/hemato_pwned").exists()


def test_cli_bad_input_one_line(checkpoint: Path, tmp_path: Path) -> None:
    _bad_inputs(tmp_path, checkpoint)
    out = tmp_path / "cli"
    proc = _cli(checkpoint, tmp_path / "nan.nii", out)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"hemato.predict: error: {tmp_path / 'nan.nii'}: 1 NaN/inf voxels"]
    _no_report(out)


def test_bf16_inference_agrees_with_fp32(checkpoint: Path, one_patient: Path) -> None:
    """bf16 prediction (chosen by --precision auto on CPUs with native bf16) against fp32 on a
    real scan: probabilities within 0.02, and the masks identical wherever fp32 is not within
    0.05 of the threshold (the tiny test model is not confident; a trained model's pixels
    almost all are, see docs/performance.md for its mask Dice)."""
    from hemato.data.readers.scan import read_scan
    from hemato.engine import segment
    from hemato.precision import native_bf16
    from hemato.weights.load import load_model

    if not native_bf16():
        pytest.skip("this CPU has no native bf16: predict refuses --precision bf16 here")
    m32, m16 = load_model(checkpoint, precision="32"), load_model(checkpoint, precision="bf16")
    assert m16.identity["precision"]["precision"] == "bf16-mixed"
    assert m32.identity["precision"]["precision"] == "32-true"
    scan = read_scan(one_patient, m32.contract.window_level, m32.contract.window_width)
    p32, k32 = segment(m32.forward, scan.image, m32.contract)
    p16, k16 = segment(m16.forward, scan.image, m16.contract)
    assert np.abs(p32 - p16).max() < 0.02
    decisive = np.abs(p32 - m32.contract.threshold) > 0.05
    assert np.array_equal(k32[decisive], k16[decisive])
