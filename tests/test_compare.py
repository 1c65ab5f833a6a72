"""Expansion between two scans: arithmetic and flags on synthetic pairs with known volumes,
per-bleed matching, refusals (unknown spacing, different patients), report folders reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hemato.compare import compare, expansion, match_bleeds
from hemato.data.readers.errors import InputError
from hemato.data.readers.nifti import window_hu
from tests.data.files import write_dicom_series, write_png
from tests.test_predict_trust import SP, head, ml, threshold_network  # noqa: F401  (autouse fixture)


def test_expansion_arithmetic_and_flags() -> None:
    e = expansion(10.0, 16.0)
    assert e["change_ml"] == 6.0 and e["change_relative"] == pytest.approx(0.6)
    assert e["flags"] == {"6ml_or_33pct": True, "12_5ml": False, "26pct": True}
    assert expansion(40.0, 50.0)["flags"] == {"6ml_or_33pct": True, "12_5ml": False, "26pct": False}  # +10 ml, +25 %
    assert (
        expansion(40.0, 52.5)["flags"]["12_5ml"] and not expansion(20.0, 25.0)["flags"]["6ml_or_33pct"]
    )  # +5 ml, +25 %
    assert expansion(0.0, 1.0)["change_relative"] == float("inf") and expansion(5.0, 3.0)["flags"] == {
        "6ml_or_33pct": False,
        "12_5ml": False,
        "26pct": False,
    }


def test_bleeds_match_by_nearest_centroid() -> None:
    b0 = [{"centroid_mm": [0, 0, 0]}, {"centroid_mm": [0, 50, 50]}]
    b1 = [{"centroid_mm": [0, 52, 49]}, {"centroid_mm": [0, 1, 1]}, {"centroid_mm": [0, 200, 0]}]
    pairs = match_bleeds(b0, b1)
    assert (
        (0, 1) in [(i, j) for i, j, _ in pairs] and (1, 0) in [(i, j) for i, j, _ in pairs] and (None, 2, None) in pairs
    )


def test_two_scans_compare_with_known_volumes(tmp_path: Path) -> None:
    hu0, t0 = head(6, (slice(1, 4), slice(20, 30), slice(22, 36)))
    hu1, t1 = head(6, (slice(1, 5), slice(18, 32), slice(20, 38)))
    hu1[2, 40:44, 10:14] = 70.0  # a new small bleed far from the first
    t1[2, 40:44, 10:14] = True
    write_dicom_series(tmp_path / "s0", hu0, spacing=SP, pid="P1")
    write_dicom_series(tmp_path / "s1", hu1, spacing=SP, pid="P1")
    r = compare(tmp_path / "s0", tmp_path / "s1", tmp_path / "cmp", "model.pt")
    assert r["baseline_ml"] == pytest.approx(ml(t0.sum())) and r["followup_ml"] == pytest.approx(ml(t1.sum()))
    assert r["change_ml"] == pytest.approx(ml(t1.sum() - t0.sum())) and r["patient_check"] == "same DICOM PatientID"
    status = sorted(b["status"] for b in r["bleeds"])
    assert status == ["matched", "new"]
    matched = next(b for b in r["bleeds"] if b["status"] == "matched")
    assert matched["baseline_ml"] == pytest.approx(ml(t0.sum())) and (tmp_path / "cmp" / matched["overlay"]).is_file()
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["flag_definitions"]["12_5ml"][
        "reference"
    ].startswith("Dowlatshahi")
    # the two report folders can be compared again without predicting
    r2 = compare(tmp_path / "cmp" / "baseline", tmp_path / "cmp" / "followup", tmp_path / "cmp2")
    assert r2["change_ml"] == pytest.approx(r["change_ml"])


def test_comparisons_that_mean_nothing_are_refused(tmp_path: Path) -> None:
    hu, _ = head()
    write_dicom_series(tmp_path / "a", hu, spacing=SP, pid="P1")
    write_dicom_series(tmp_path / "b", hu, spacing=SP, pid="P2")
    with pytest.raises(InputError, match="different patients"):
        compare(tmp_path / "a", tmp_path / "b", tmp_path / "c1", "model.pt")
    assert compare(tmp_path / "a", tmp_path / "b", tmp_path / "c2", "model.pt", force=True)["patient_check"] == "forced"
    for k in range(len(hu)):
        write_png(tmp_path / "png" / f"{k}.png", window_hu(hu[k]))
    with pytest.raises(InputError, match="has no volume"):
        compare(tmp_path / "a", tmp_path / "png", tmp_path / "c3", "model.pt")
