"""Packed weights (hemato.weights): fold models packed into one file, read without code,
carrying their contract; predict uses a packed file like a checkpoint, and DICOM / NIfTI /
PNG inputs of the same slices give the same mask. The shipped default model (one
EfficientNet-Lite0 U-Net trained on ct-ich, experiments/ship_lite.sh) is used without
--checkpoint and segments a shipped real sample; without a default model predict refuses in
one line."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hemato.data.readers.images import read_slice
from hemato.data.readers.nifti import window_hu
from hemato.predict import predict
from hemato.weights import default_model_path
from hemato.weights.load import load_model
from tests.data.files import write_dicom_series, write_nifti, write_png

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "ctich-sample"
DEFAULT_CV_PATIENTS = 60  # the patients of the recipe folds whose out-of-fold runs set the rules (folds 0-4)
DEFAULT_081_DICE = 0.70  # measured 0.781 (a training patient of the shipped model; Intel Xeon, fp32)


def test_without_a_shipped_model_predict_refuses_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hemato.weights

    monkeypatch.setattr(hemato.weights, "default_model_path", lambda: tmp_path / "absent.pt")
    hu = np.full((3, 32, 32), -1000.0)
    hu[:, 4:28, 4:28] = 30.0
    write_dicom_series(tmp_path / "dcm", hu)
    from hemato.predict import main

    assert main(["--input", str(tmp_path / "dcm"), "--output", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("hemato.predict: error: --checkpoint: no default model") and "--checkpoint MODEL" in line
    assert not (tmp_path / "out").exists()


def test_the_default_model_ships_small_with_its_contract_and_validation() -> None:
    path = default_model_path()
    assert path.is_file() and path.stat().st_size <= 30e6
    blob = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code runs
    assert blob["format"] == "hemato-weights/1" and len(blob["members"]) == 1
    assert blob["model"]["name"] == "lite0_unet"
    c = blob["contract"]
    assert (c["window_level"], c["window_width"], c["orientation"], c["context"], c["tta"], c["field_mm"]) == (
        40.0,
        120.0,
        "any",
        1,
        False,
        230.4,
    )
    assert c["min_component_px"] > 0 and "ct-ich" in c["trained_on"]
    prov = blob["provenance"]
    assert prov["members"][0]["test_patients"] == []  # trained on every patient but the validation ones
    v = prov["validation"]  # the recipe's out-of-fold figures under exactly these rules (reports/ctich/v7_ship)
    assert v["n_patients_with_bleed"] + v["n_patients_without_bleed"] == DEFAULT_CV_PATIENTS
    assert sum(b["n"] for b in v["found_by_size"]) == v["n_patients_with_bleed"]
    assert "CC BY 4.0" in (ROOT / "hemato" / "weights" / "README.md").read_text()


@pytest.mark.slow
def test_the_default_model_segments_a_shipped_real_scan(tmp_path: Path) -> None:
    """Patient 081 of the shipped sample (15 slices, a training patient of the model):
    through ``hemato.predict`` with no checkpoint, as slices and as a DICOM series in HU."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hemato.predict",
            "--input",
            str(SAMPLE / "slices.csv"),
            "--patient",
            "081",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [r for r in (SAMPLE / "slices.csv").read_text().splitlines()[1:] if r.startswith("081,")]
    truth = np.stack([read_slice(SAMPLE / r.split(",")[3]) > 127 for r in rows])
    pred = np.stack([read_slice(tmp_path / "out" / "mask" / f"{r.split(',')[1]}.png") > 0 for r in rows])
    dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert dice >= DEFAULT_081_DICE, dice
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    v = report["model"]["provenance"]["validation"]
    assert f"Dice {v['dice_patient']:.2f}" in report["model_validation"]
    # the smallest reportable bleed, on this 650 px grid (spacing unknown: whole frames, no ml)
    limit = report["detection_limit"]
    assert limit["native_voxels"] == math.ceil(report["contract"]["min_component_px"] * (650 / 256) ** 2)
    assert limit["ml"] is None
    # the same slices as a DICOM series in HU at the pixel size of ct-ich's assumed 0.45 mm at
    # 512 px (0.354 mm at 650), no checkpoint either: the field rule leaves the frame as is
    # (230 mm), so the same mask up to the HU rounding of the JPG grey values
    files = [SAMPLE / r.split(",")[2] for r in rows]
    hu = np.stack([np.rint(read_slice(f).astype(np.float64) / 255.0 * 120.0 - 20.0) for f in files])
    hu[hu <= -20] = -1000.0
    px = 0.45 * 512 / 650
    write_dicom_series(tmp_path / "dcm", hu, spacing=(px, px), thickness=5.0)
    dcm = predict(None, tmp_path / "dcm", tmp_path / "out_dcm", precision="32")
    areas = np.array([s["area_px"] for s in dcm["slices"]])
    assert np.allclose(areas, pred.reshape(len(rows), -1).sum(1), rtol=0.05, atol=40)
    assert dcm["detection_limit"]["ml"] > 0


@pytest.fixture(scope="module")
def packed(tmp_path_factory, tiny_cv_runs) -> Path:
    """Two tiny fold models (2-fold CV of the shipped sample) packed into one file."""
    tmp = tmp_path_factory.mktemp("weights")
    runs = tiny_cv_runs
    out = tmp / "ens.pt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hemato.weights",
            "pack",
            *map(str, runs),
            "--output",
            str(out),
            "--trained-on",
            "test: ct-ich sample, 2 folds",
            "--min-component-px",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_packed_weights_load_without_code_and_carry_their_contract(packed: Path) -> None:
    blob = torch.load(packed, map_location="cpu", weights_only=True)  # no pickled code runs
    assert blob["format"] == "hemato-weights/1" and len(blob["members"]) == 2
    assert sorted(m["fold"] for m in blob["provenance"]["members"]) == [0, 1]
    c = blob["contract"]
    assert (c["window_level"], c["window_width"], c["orientation"], c["min_component_px"], c["input_size"]) == (
        40.0,
        120.0,
        "any",
        3,  # the packing's override (the runs trained with 2)
        64,
    )
    assert c["trained_on"] == "test: ct-ich sample, 2 folds"
    m = load_model(packed, precision="32")
    assert m.identity["members"] == 2 and m.net is None and getattr(m.forward, "size_divisor", None)


@pytest.mark.slow
def test_dicom_nifti_and_png_of_the_same_slices_give_the_same_mask(packed: Path, tmp_path: Path) -> None:
    files = sorted((SAMPLE / "images").glob("081_*.jpg"), key=lambda f: int(f.stem.split("_")[1]))
    # integer HU on the 40/120 window (window floor = air); the PNGs are those HU windowed back
    hu = np.stack([np.rint(read_slice(f).astype(np.float64) / 255.0 * 120.0 - 20.0) for f in files])
    hu[hu <= -20] = -1000.0
    for f, h in zip(files, hu):
        write_png(tmp_path / "png" / f"{f.stem}.png", window_hu(h))
    write_dicom_series(tmp_path / "dcm", hu, spacing=(0.45, 0.45), thickness=5.0)
    write_nifti(tmp_path / "scan.nii.gz", hu, spacing=(0.45, 0.45), thickness=5.0)
    png = predict(packed, tmp_path / "png", tmp_path / "o_png", spacing=(0.45, 0.45), thickness=5.0, precision="32")
    for inp in (tmp_path / "dcm", tmp_path / "scan.nii.gz"):
        r = predict(packed, inp, tmp_path / f"o_{inp.stem}", precision="32")
        assert [s["area_px"] for s in r["slices"]] == [s["area_px"] for s in png["slices"]], r["input"]["kind"]
        assert r["volume_ml"] == pytest.approx(png["volume_ml"])
    assert png["model"]["members"] == 2 and png["contract"]["min_component_px"] == 3
    shutil.rmtree(tmp_path / "png")
