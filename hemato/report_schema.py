"""The per-scan report: one typed, versioned structure (pydantic) that ``hemato.predict`` fills
and that report.json, report.csv, report.html, the cohort's summary.csv, the DICOM SR and
``hemato-compare`` read from.

    python -m hemato.report_schema > docs/report.schema.json   # the JSON Schema, for users' pipelines

Units: volumes in ml, lengths in mm, areas in mm^2 or pixels (``_px``), voxels counted on the
scan's own grid. ``SCHEMA_VERSION`` follows semantic versioning: a new optional field is a
minor step, a renamed or removed one a major step; a reader refuses a major version it does
not know (one line), and reads reports written before versions existed (``0``) if they hold
the fields it needs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hemato.data.readers.errors import InputError

SCHEMA_VERSION = "1.0.0"


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")  # a part may carry more detail than the schema names


class BleedAbc2(_Part):
    volume_ml: float
    A_mm: float = Field(description="longest axis on the slice of largest area (mm)")
    B_mm: float = Field(description="longest chord perpendicular to A on that slice (mm)")
    C_mm: float = Field(description="extent across slices (mm)")
    n_slices: int
    slice: int
    planimetric_ml: float | None = None


class Abc2(_Part):
    """ABC/2 (Kothari's ellipsoid estimate), summed over bleeds."""

    volume_ml: float
    A_mm: float | None = None
    B_mm: float | None = None
    C_mm: float | None = None
    n_bleeds: int
    bleeds: list[BleedAbc2] = []
    method: str | None = None


class Bleed(_Part):
    """One 3D component of the mask (largest first)."""

    voxels: int
    volume_ml: float | None
    centroid_index: list[float] = Field(description="(slice, row, col) in voxels")
    centroid_mm: list[float] | None = Field(description="(slice, row, col) in mm from the first slice's corner")
    largest_slice: int


class SliceArea(_Part):
    slice: str
    area_px: int
    area_mm2: float | None


class InputInfo(_Part):
    path: str | None = Field(description="the input's path (null unless --keep-names)")
    kind: str = Field(description="dicom, nifti or slices")
    shape: list[int] = Field(description="(Z, H, W) pixels")
    fingerprint: str


class Confidence(_Part):
    voxels_at: dict[str, int] = Field(description="mask voxels at probability thresholds 0.3 / 0.5 / 0.7")
    relative_spread: float | None = None
    unsure: bool


class DetectionLimit(_Part):
    native_voxels: int = Field(description="smallest bleed the model reports on this scan's grid")
    ml: float | None
    dropped_regions: int = Field(description="candidate regions the component rules left out")
    dropped_voxels: int
    dropped_largest_voxels: int
    dropped_ml: float | None
    dropped_largest_ml: float | None


class Coverage(_Part):
    reason: str
    slices: list[str]
    edges: list[str]


class Inference(_Part):
    crop_to_head: bool
    device: str
    threads: int
    precision: dict[str, Any] | None = None


class ScanReport(BaseModel):
    """One scan's report (report.json)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: str = SCHEMA_VERSION
    patient: str = Field(description="a salted pseudonym of the input's name unless --patient-id/--keep-names")
    volume_ml: float | None = Field(description="planimetric volume (ml); null when it cannot be measured")
    volume_status: str = Field(
        description="ok, no_bleed_found, lower_bound, 'ok (per-slice extents ...)', 'volume unavailable: ...' or "
        "'volume refused: ...'"
    )
    abc2: Abc2 | None
    n_bleed_slices: int
    n_slices: int
    spacing_mm: list[float] | None = Field(description="pixel spacing (row, col) in mm")
    slice_spacing_mm: float | list[float] | None = Field(
        description="distance between slice centres (mm), or each slice's extent when it varies"
    )
    geometry_source: dict[str, str]
    input: InputInfo
    model: dict[str, Any] = Field(description="the model's identity: file, sha256, network, contract, provenance")
    model_trained_on: str
    model_validation: str | None
    warnings: list[str]
    confidence: Confidence | None
    input_qc: list[str]
    intensity: dict[str, Any] | None = None
    patient_key: str | None = None
    bleeds: list[Bleed]
    threshold: float
    contract: dict[str, Any]
    tta: bool
    inference: Inference
    software: dict[str, str]
    detection_limit: DetectionLimit | None = None
    finding: str | None = Field(default=None, description="what the model found, in words; never 'no bleed'")
    coverage: Coverage | None = None
    slices: list[SliceArea] = []

    # ------------------------------------------------------------ reading and writing
    def as_dict(self) -> dict[str, Any]:
        """The report as report.json holds it (JSON types only)."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    @classmethod
    def load(cls, path: str | Path) -> ScanReport:
        """Read a report.json (or a report folder's); one-line InputError if it is not one this
        version of hemato can read."""
        path = Path(path)
        if path.is_dir():
            path = path / "report.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise InputError(path, f"not a readable report.json ({e.__class__.__name__})") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | Path = "report") -> ScanReport:
        version = str(data.get("schema_version", "0"))
        major = version.split(".")[0]
        if major not in ("0", SCHEMA_VERSION.split(".")[0]):
            raise InputError(
                where, f"report schema {version} is newer than this hemato reads ({SCHEMA_VERSION}): update hemato"
            )
        try:
            return cls.model_validate({**data, "schema_version": version})
        except ValidationError as e:
            first = e.errors()[0]
            at = ".".join(map(str, first["loc"]))
            raise InputError(where, f"not a hemato report ({at}: {first['msg']})") from None

    # ------------------------------------------------------------ the flat views
    def csv_row(self, checkpoint: str | Path | None) -> dict[str, Any]:
        """report.csv's one row."""
        a = self.abc2
        geo = self.geometry_source
        return {
            "patient": self.patient,
            "volume_ml": self.volume_ml,
            "volume_status": self.volume_status,
            "abc2_ml": a.volume_ml if a else None,
            "A_mm": a.A_mm if a else None,
            "B_mm": a.B_mm if a else None,
            "C_mm": a.C_mm if a else None,
            "n_bleed_slices": self.n_bleed_slices,
            "slice_areas_mm2": ";".join("" if s.area_mm2 is None else f"{s.area_mm2:.2f}" for s in self.slices),
            "slice_areas_px": ";".join(str(s.area_px) for s in self.slices),
            "spacing_row_mm": self.spacing_mm[0] if self.spacing_mm else None,
            "spacing_col_mm": self.spacing_mm[1] if self.spacing_mm else None,
            "slice_spacing_mm": self.slice_spacing_mm if not isinstance(self.slice_spacing_mm, list) else None,
            "spacing_source": geo.get("spacing"),
            "slice_spacing_source": geo.get("thickness"),
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": self.model.get("sha256"),
            "hemato_version": self.software.get("hemato"),
        }

    def summary_row(self) -> dict[str, Any]:
        """A cohort summary.csv row's measured part."""
        a = self.abc2
        return {
            "volume_ml": self.volume_ml,
            "volume_status": self.volume_status,
            "abc2_ml": a.volume_ml if a else None,
            "n_bleeds": a.n_bleeds if a else None,
            "n_bleed_slices": self.n_bleed_slices,
            "n_slices": self.n_slices,
        }


def json_schema() -> dict[str, Any]:
    """The JSON Schema of report.json (draft 2020-12, from the pydantic model)."""
    schema = ScanReport.model_json_schema(mode="serialization")
    schema["title"] = f"hemato report.json, schema {SCHEMA_VERSION}"
    return schema


if __name__ == "__main__":
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
