"""Packed weights (hemato.weights): fold models packed into one file, read without code,
carrying their contract; predict uses a packed file like a checkpoint, and DICOM / NIfTI /
PNG inputs of the same slices give the same mask. The shipped default model (the ct-ich
fold models' ensemble) is used without --checkpoint and segments a shipped real sample as its
cross-validation says; without a default model predict refuses in one line."""

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
from hemato.predict import load_model, predict
from hemato.weights import default_model_path
from tests.data.files import write_dicom_series, write_nifti, write_png

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "ctich-sample"


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
    assert path.is_file() and path.stat().st_size <= 25e6
    blob = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code runs
    assert blob["format"] == "hemato-weights/1" and len(blob["members"]) == 5
    c = blob["contract"]
    assert (c["window_level"], c["window_width"], c["orientation"], c["context"], c["tta"]) == (
        40.0,
        120.0,
        "any",
        1,
        True,
    )
    assert c["min_component_px"] > 0 and c["min_component_hu"] is not None and "ct-ich" in c["trained_on"]
    prov = blob["provenance"]
    folds = [m["fold"] for m in prov["members"]]
    tested = [p for m in prov["members"] for p in m["test_patients"]]
    assert sorted(folds) == [0, 1, 2, 3, 4] and len(tested) == len(set(tested)) == 60
    v = prov["validation"]  # the cross-validated figures of exactly this contract (reports/ctich/v5_ship)
    assert v["n_patients_with_bleed"] == 28 and v["n_patients_without_bleed"] == 32 and v["fp_patients"] <= 3
    assert "CC BY 4.0" in (ROOT / "hemato" / "weights" / "README.md").read_text()


@pytest.mark.slow
def test_the_default_model_segments_a_shipped_real_scan_as_cross_validated(tmp_path: Path) -> None:
    """Patient 081 of the shipped sample (15 slices): through ``hemato.predict`` with no
    checkpoint, and through the one member that never saw the patient (its fold's model)."""
    from hemato.engine import segment
    from hemato.predict import read_scan

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
    assert dice >= 0.75, dice  # measured 0.793; 4 of the 5 members trained on this patient
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    v = report["model"]["provenance"]["validation"]
    assert v["fp_patients"] <= 3 and f"Dice {v['dice_patient']:.2f}" in report["model_validation"]
    # the smallest reportable bleed, on this 650 px grid (spacing unknown: no ml)
    limit = report["detection_limit"]
    assert limit["native_voxels"] == math.ceil(report["contract"]["min_component_px"] * (650 / 256) ** 2)
    assert limit["ml"] is None and limit["min_component_hu"] == report["contract"]["min_component_hu"]
    # the same slices as a DICOM series in HU, no checkpoint either: the same mask up to the
    # HU rounding of the JPG grey values (+-1 grey level), and the detection limit in ml now
    # that the spacing is known
    files = [SAMPLE / r.split(",")[2] for r in rows]
    hu = np.stack([np.rint(read_slice(f).astype(np.float64) / 255.0 * 120.0 - 20.0) for f in files])
    hu[hu <= -20] = -1000.0
    write_dicom_series(tmp_path / "dcm", hu, spacing=(0.45, 0.45), thickness=5.0)
    dcm = predict(None, tmp_path / "dcm", tmp_path / "out_dcm", precision="32")
    areas = np.array([s["area_px"] for s in dcm["slices"]])
    assert np.allclose(areas, pred.reshape(len(rows), -1).sum(1), rtol=0.02, atol=20)
    assert dcm["detection_limit"]["ml"] == pytest.approx(limit["native_voxels"] * 0.45 * 0.45 * 5.0 / 1000)
    # the member that never saw 081: its out-of-fold Dice on these JPG copies (measured 0.760)
    blob = torch.load(default_model_path(), map_location="cpu", weights_only=True)
    (k,) = [i for i, m in enumerate(blob["provenance"]["members"]) if "081" in m["test_patients"]]
    torch.save({**blob, "members": [blob["members"][k]]}, tmp_path / "member.pt")
    one = load_model(tmp_path / "member.pt", precision="32")
    scan = read_scan(SAMPLE / "slices.csv", manifest_patient="081")
    _, mask = segment(one.forward, scan.image, one.contract)
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) >= 0.70


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
