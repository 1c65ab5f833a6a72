"""The model shipped in hemato/weights/: loads without code, carries its contract, predicts
real CT with no --checkpoint, in any in-plane orientation, and DICOM / NIfTI / PNG inputs of
the same slices give the same mask.

The sample patients (077-081, data/ctich-sample) are in the ensemble's training data (each
patient trained 4 of its 5 members): these tests check the shipped path, not generalisation;
the cross-validated figures are in docs/model_card.md.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hemato.data.readers.images import read_mask, read_slice
from hemato.predict import load_model, predict
from hemato.weights import default_model_path
from tests.data.files import write_dicom_series, write_nifti

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "ctich-sample"
WEIGHTS = default_model_path()


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


@pytest.fixture(scope="module")
def p081(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """Patient 081's 15 consecutive sample slices (bleed on every one): folder, images, truth."""
    d = tmp_path_factory.mktemp("p081")
    files = sorted((SAMPLE / "images").glob("081_*.jpg"), key=lambda f: int(f.stem.split("_")[1]))
    for f in files:
        shutil.copy(f, d / f.name)
    img = np.stack([read_slice(f) for f in files])
    truth = np.stack([read_mask(SAMPLE / "masks" / f"{f.stem}.png") for f in files])
    return d, img, truth


def test_weights_load_without_code_and_carry_their_contract() -> None:
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size <= 25e6
    blob = torch.load(WEIGHTS, map_location="cpu", weights_only=True)  # no pickled code runs
    assert blob["format"] == "hemato-weights/1" and len(blob["members"]) >= 1
    folds = [m["fold"] for m in blob["provenance"]["members"]]
    assert len(set(folds)) == len(folds) == len(blob["members"])  # one member per cross-validation fold
    c = blob["contract"]
    assert (c["window_level"], c["window_width"], c["orientation"]) == (40.0, 120.0, "any") and "ct-ich" in c[
        "trained_on"
    ]
    assert (WEIGHTS.parent / "README.md").read_text().count("CC BY 4.0") >= 1
    m = load_model(WEIGHTS, precision="32")
    assert m.identity["members"] == len(blob["members"]) and m.contract.min_component_px > 0


def test_default_model_segments_a_real_sample(p081, tmp_path: Path) -> None:
    folder, _, truth = p081
    r = predict(None, folder, tmp_path / "out", spacing=(0.45, 0.45), thickness=5.0, precision="32")
    assert r["model"]["checkpoint"] == str(WEIGHTS) and r["model_trained_on"].startswith("PhysioNet ct-ich")
    pred = np.stack(
        [
            read_mask(tmp_path / "out" / "mask" / f"{f.stem}.png")
            for f in sorted(folder.iterdir(), key=lambda f: int(f.stem.split("_")[1]))
        ]
    )
    assert dice(pred, truth) >= 0.6, dice(pred, truth)
    assert r["volume_ml"] == pytest.approx(pred.sum() * 0.45 * 0.45 * 5 / 1000)


def test_orientation_invariance_on_real_slices(p081) -> None:
    from hemato.engine import segment

    _, img, truth = p081
    m = load_model(WEIGHTS, precision="32")
    _, base = segment(m.forward, img, m.contract)
    for k in (1, 2, 3):
        _, rot = segment(m.forward, np.ascontiguousarray(np.rot90(img, k, axes=(1, 2))), m.contract)
        back = np.rot90(rot, -k, axes=(1, 2))
        assert dice(back, base) >= 0.85, (k, dice(back, base))
        assert abs(dice(back, truth) - dice(base, truth)) <= 0.05


def test_dicom_nifti_and_png_of_the_same_slices_give_the_same_mask(p081, tmp_path: Path) -> None:
    import nibabel as nib

    folder, img, _ = p081
    # back to HU on the 40/120 window (window floor -> air, as a real scan has it)
    hu = np.where(img == 0, -1000.0, img.astype(np.float64) / 255.0 * 120.0 - 20.0)
    hu = np.rint(hu)
    png = predict(None, folder, tmp_path / "png", spacing=(0.45, 0.45), thickness=5.0, precision="32")
    write_dicom_series(tmp_path / "dcm", hu, spacing=(0.45, 0.45), thickness=5.0)
    dcm = predict(None, tmp_path / "dcm", tmp_path / "o_dcm", precision="32")
    write_nifti(tmp_path / "scan.nii.gz", hu, spacing=(0.45, 0.45), thickness=5.0)
    nii = predict(None, tmp_path / "scan.nii.gz", tmp_path / "o_nii", precision="32")
    a_png = [s["area_px"] for s in png["slices"]]
    for r in (dcm, nii):
        a = [s["area_px"] for s in r["slices"]]
        assert np.abs(np.array(a) - np.array(a_png)).sum() <= 0.01 * sum(a_png) + 5, (r["input"]["kind"], a, a_png)
        assert r["volume_ml"] == pytest.approx(png["volume_ml"], rel=0.02)
    m = np.asarray(nib.load(tmp_path / "o_nii" / "mask.nii.gz").dataobj)
    assert m.sum() == sum(s["area_px"] for s in nii["slices"])


def test_cli_predicts_a_dicom_folder_with_no_checkpoint(p081, tmp_path: Path) -> None:
    _, img, _ = p081
    hu = np.rint(np.where(img == 0, -1000.0, img.astype(np.float64) / 255.0 * 120.0 - 20.0))
    write_dicom_series(tmp_path / "dcm", hu, spacing=(0.45, 0.45), thickness=5.0)
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.predict", "--input", str(tmp_path / "dcm"), "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "report.json").is_file() and (tmp_path / "out" / "mask.nii.gz").is_file()
    assert " ml" in proc.stdout
