"""The report schema (issue 24): versioned, read back exactly, refused in one line when foreign."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hemato.data.readers.errors import InputError
from hemato.report_schema import SCHEMA_VERSION, ScanReport, json_schema

ROOT = Path(__file__).resolve().parents[1]


def _report() -> dict:
    return {
        "patient": "anon-0123456789ab",
        "volume_ml": 12.5,
        "volume_status": "ok",
        "abc2": {"volume_ml": 11.0, "A_mm": 40.0, "B_mm": 25.0, "C_mm": 22.0, "n_bleeds": 1, "bleeds": []},
        "n_bleed_slices": 4,
        "n_slices": 30,
        "spacing_mm": [0.45, 0.45],
        "slice_spacing_mm": 5.0,
        "geometry_source": {"spacing": "DICOM PixelSpacing", "thickness": "DICOM slice positions"},
        "input": {"path": None, "kind": "dicom", "shape": [30, 512, 512], "fingerprint": "f" * 64},
        "model": {"checkpoint": "m.pt", "sha256": "0" * 64},
        "model_trained_on": "test",
        "model_validation": None,
        "warnings": [],
        "confidence": {"voxels_at": {"0.3": 10, "0.5": 9, "0.7": 8}, "relative_spread": 0.2, "unsure": False},
        "input_qc": [],
        "bleeds": [
            {"voxels": 9, "volume_ml": 12.5, "centroid_index": [1.0, 2.0, 3.0], "centroid_mm": None, "largest_slice": 1}
        ],
        "threshold": 0.5,
        "contract": {"input_size": 256},
        "tta": False,
        "inference": {"crop_to_head": True, "device": "cpu", "threads": 2},
        "software": {"hemato": "0.1.0", "torch": "2.13.0"},
        "slices": [{"slice": "0", "area_px": 10, "area_mm2": 2.0251}],
    }


def test_a_report_round_trips_with_its_version(tmp_path: Path) -> None:
    r = ScanReport(**_report())
    (tmp_path / "report.json").write_text(r.to_json())
    back = ScanReport.load(tmp_path)
    assert back == r and back.schema_version == SCHEMA_VERSION
    assert json.loads(r.to_json())["schema_version"] == SCHEMA_VERSION
    row = r.csv_row("m.pt")
    assert row["volume_ml"] == 12.5 and row["abc2_ml"] == 11.0 and row["slice_areas_mm2"] == "2.03"
    assert r.summary_row() == {
        "volume_ml": 12.5,
        "volume_status": "ok",
        "abc2_ml": 11.0,
        "n_bleeds": 1,
        "n_bleed_slices": 4,
        "n_slices": 30,
    }


def test_foreign_or_newer_reports_are_refused_in_one_line(tmp_path: Path) -> None:
    old = _report()  # written before versions: read as 0
    assert ScanReport.from_dict(old).schema_version == "0"
    with pytest.raises(InputError, match=r"report schema 2.0.0 is newer than this hemato reads"):
        ScanReport.from_dict({**_report(), "schema_version": "2.0.0"}, "r.json")
    broken = _report()
    del broken["volume_status"]
    with pytest.raises(InputError, match=r"r.json: not a hemato report \(volume_status: Field required\)"):
        ScanReport.from_dict(broken, "r.json")
    with pytest.raises(InputError, match="not a hemato report"):
        ScanReport.from_dict({**_report(), "volume_mL": 3.0}, "r.json")  # a misspelt field is not ignored
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(InputError, match="not a readable report.json"):
        ScanReport.load(tmp_path)


def _shape(schema: dict) -> dict:
    """Every object's properties and required fields (pydantic versions differ in the rest)."""
    parts = {"": schema, **schema.get("$defs", {})}
    return {k: (sorted(v.get("properties", {})), sorted(v.get("required", []))) for k, v in parts.items()}


def test_the_shipped_json_schema_is_current() -> None:
    """docs/report.schema.json has the fields `python -m hemato.report_schema` prints."""
    out = subprocess.run([sys.executable, "-m", "hemato.report_schema"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == json_schema()
    shipped = json.loads((ROOT / "docs" / "report.schema.json").read_text())
    assert _shape(shipped) == _shape(json_schema()), (
        "regenerate: python -m hemato.report_schema > docs/report.schema.json"
    )
    assert "volume_ml" in json_schema()["required"] and shipped["title"].endswith(SCHEMA_VERSION)
