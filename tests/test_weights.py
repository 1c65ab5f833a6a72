"""Packed weights (hemato.weights): fold models packed into one file, read without code,
carrying their contract; predict uses a packed file like a checkpoint, and DICOM / NIfTI /
PNG inputs of the same slices give the same mask. No default model ships yet: predict
without --checkpoint refuses in one line."""

from __future__ import annotations

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


def test_without_a_shipped_model_predict_refuses_in_one_line(tmp_path: Path) -> None:
    if default_model_path().is_file():
        pytest.skip("a default model ships")
    hu = np.full((3, 32, 32), -1000.0)
    hu[:, 4:28, 4:28] = 30.0
    write_dicom_series(tmp_path / "dcm", hu)
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.predict", "--input", str(tmp_path / "dcm"), "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert (
        line.startswith("hemato.predict: error: --checkpoint: no default model ships with hemato yet")
        and "reports/ctich/README.md" in line
    )
    assert not (tmp_path / "out").exists()


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
