"""Golden outputs (issue 24): what the users' commands write, recorded with the code from
before the one-home-per-stage refactor (commit b54da4e), and compared with today's.

Cases, all through the CLIs with the shipped default model: the shipped sample's patient 081
from its manifest, the same slices as a DICOM series and as a NIfTI file, ``hemato.cv report``
on two committed out-of-fold runs, and ``hemato-compare`` of two of those report folders.

    .venv/bin/python -m tests.test_golden OUT   # write the cases with the code on the path

Compared: report.json minus what names a time, a path or this machine (input fingerprint,
paths, threads, the precision probe), minus fields added since (``schema_version``, cv_summary's
``paired_metrics`` and ``paired_rotations``) and minus the shipped weights file's hash and packed
figures (they change when it is repacked); report.csv minus its checkpoint path; the mask
voxels; cv_summary.json; compare.json.
Numbers within 1e-6 relative, masks identical but for at most 0.1 % of the bleed voxels
(another CPU's kernels can move a voxel at the threshold).
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SAMPLE = ROOT / "data" / "ctich-sample"
OOF = ROOT / "reports" / "ctich" / "v7_ladder" / "runs" / "synth"
DROP = {
    ("input", "fingerprint"),
    ("input", "path"),
    ("inference", "threads"),
    ("model", "checkpoint"),
    ("model", "precision"),
    ("inference", "precision"),
    ("schema_version",),
    # the shipped weights file: its hash and cross-validated figures change when it is repacked
    # (more folds), its tensors do not; the masks and volumes below are what the code computes
    ("model", "sha256"),
    ("model", "provenance"),
    ("model_validation",),
    ("model_trained_on",),
    ("model", "contract", "trained_on"),
    ("contract", "trained_on"),
    ("reports",),  # compare.json: the report folders' paths
}
SCANS = ("manifest", "dicom", "nifti")


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, *args], check=True, env=env, cwd=env.get("HEMATO_GOLDEN_CWD", str(ROOT)))


def produce(out: Path) -> None:
    """Write every case into ``out`` with whichever hemato is first on the path."""
    from tests.data.files import sample_hu, write_dicom_series, write_nifti

    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HEMATO_SALT": "golden", "PYTHONHASHSEED": "0"}
    hu = sample_hu("081")
    write_dicom_series(out / "in" / "dicom", hu, spacing=(0.45, 0.45), thickness=5.0)
    write_nifti(out / "in" / "scan.nii.gz", hu, spacing=(0.45, 0.45), thickness=5.0)
    inputs = {
        "manifest": [str(SAMPLE / "slices.csv"), "--patient", "081"],
        "dicom": [str(out / "in" / "dicom")],
        "nifti": [str(out / "in" / "scan.nii.gz")],
    }
    for name, src in inputs.items():
        _run(["-m", "hemato.predict", "--input", *src, "--output", str(out / name), "--threads", "2"], env)
    _run(["-m", "hemato.cv", "report", str(OOF), "--out", str(out / "cv")], env)
    _run(
        ["-m", "hemato.compare", "--baseline", str(out / "dicom"), "--followup", str(out / "nifti")]
        + ["--output", str(out / "compare"), "--force"],
        env,
    )


def _strip(d: Any, path: tuple[str, ...] = ()) -> Any:
    if isinstance(d, dict):
        return {k: _strip(v, (*path, k)) for k, v in d.items() if (*path, k) not in DROP}
    if isinstance(d, list):
        return [_strip(v, path) for v in d]
    return d


def _same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
            assert (a is None and b is None) or (math.isnan(a) and math.isnan(b)), f"{where}: {a} != {b}"
        else:
            assert b == pytest.approx(a, rel=1e-6, abs=1e-9), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _csv(path: Path) -> list[dict[str, Any]]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.pop("checkpoint", None)
        r.pop("checkpoint_sha256", None)
        for k, v in r.items():
            try:
                r[k] = float(v)
            except (TypeError, ValueError):
                pass
    return rows


def _mask(folder: Path) -> np.ndarray:
    if (folder / "mask.nii.gz").exists():
        import nibabel as nib

        return np.asarray(nib.load(str(folder / "mask.nii.gz")).dataobj) > 0
    import cv2

    files = sorted((folder / "mask").glob("*.png"), key=lambda f: int(f.stem))
    return np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) > 0 for f in files])


def record(out: Path, golden: Path) -> None:
    """Keep what the comparison reads (small) from a :func:`produce` folder in ``golden``."""
    golden.mkdir(parents=True, exist_ok=True)
    for name in SCANS:
        (golden / f"{name}.report.json").write_text((out / name / "report.json").read_text())
        (golden / f"{name}.report.csv").write_text((out / name / "report.csv").read_text())
        np.savez_compressed(
            golden / f"{name}.mask.npz", mask=np.packbits(_mask(out / name)), shape=_mask(out / name).shape
        )
    (golden / "cv_summary.json").write_text((out / "cv" / "cv_summary.json").read_text())
    (golden / "compare.json").write_text((out / "compare" / "compare.json").read_text())


@pytest.mark.slow
def test_outputs_are_those_of_the_code_before_the_refactor(tmp_path: Path) -> None:
    produce(tmp_path)
    for name in SCANS:
        old = json.loads((GOLDEN / f"{name}.report.json").read_text())
        new = json.loads((tmp_path / name / "report.json").read_text())
        _same(_strip(old), _strip(new), f"{name}/report.json")
        _same(_csv(GOLDEN / f"{name}.report.csv"), _csv(tmp_path / name / "report.csv"), f"{name}/report.csv")
        z = np.load(GOLDEN / f"{name}.mask.npz")
        old_mask = np.unpackbits(z["mask"])[: int(np.prod(z["shape"]))].reshape(z["shape"]).astype(bool)
        new_mask = _mask(tmp_path / name)
        assert old_mask.shape == new_mask.shape
        assert (old_mask != new_mask).sum() <= max(1, 0.001 * old_mask.sum()), f"{name}: masks differ"
    cv_new = json.loads((tmp_path / "cv" / "cv_summary.json").read_text())
    assert cv_new.pop("paired_metrics") is not None  # added since (issue 26): Dice, IoU, Rvd paired
    assert cv_new.pop("paired_rotations") is not None  # added since (issue 26): paired Dice per rotation
    _same(json.loads((GOLDEN / "cv_summary.json").read_text()), cv_new, "cv_summary.json")
    old, new = (json.loads(p.read_text()) for p in (GOLDEN / "compare.json", tmp_path / "compare" / "compare.json"))
    _same(_strip(old), _strip(new), "compare.json")


if __name__ == "__main__":
    target = Path(sys.argv[1])
    produce(target / "out")
    record(target / "out", target / "golden")
