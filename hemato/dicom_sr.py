"""The report's numbers as a DICOM Structured Report (highdicom, TID 1500 Measurement Report),
for DICOM inputs, beside the SEG it references (``hemato.predict --dicom-sr``).

One volumetric measurement group for all bleeds and one per bleed (TID 1411), each
referencing the SEG's hemorrhage segment and the source series: the planimetric volume
(ml, sum of segmented voxels), the ABC/2 volume (ml, LWH ellipsoid method) and, per bleed, its
A (long axis), B (perpendicular axis) and C (height) in mm; the volume status, the
confidence flag and the coverage as qualitative evaluations (hemato's own coding scheme
``99HEMATO``: no standard code names them). The algorithm is named with its version and the
model's SHA-256. Like the SEG, it carries the source's patient and study identifiers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hemato

SCHEME = "99HEMATO"  # private coding scheme for what DICOM has no code for


def _own(value: str, meaning: str) -> Any:
    import highdicom as hd

    return hd.sr.CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning)


def _ml() -> Any:
    import highdicom as hd

    return hd.sr.CodedConcept(value="mL", scheme_designator="UCUM", meaning="milliliter")


STATUS = "VOLSTATUS"
UNSURE = "UNSURE"


def _flags(report: dict[str, Any]) -> list[Any]:
    import highdicom as hd

    status = str(report["volume_status"])
    code = status if status in ("ok", "no_bleed_found", "lower_bound") else status.split(":")[0].replace(" ", "_")
    flags = [hd.sr.QualitativeEvaluation(_own(STATUS, "hemato volume status"), _own(code[:16].upper(), status[:64]))]
    conf = report.get("confidence") or {}
    unsure = bool(conf.get("unsure"))
    flags.append(
        hd.sr.QualitativeEvaluation(
            _own(UNSURE, "hemato confidence"),
            _own(
                "UNSURE" if unsure else "SURE",
                "mask depends on the threshold" if unsure else "mask stable over thresholds",
            ),
        )
    )
    return flags


def write_dicom_sr(report: dict[str, Any], source: list[Any], seg_path: str | Path, path: str | Path) -> Path:
    """Write ``report`` (hemato.predict's dict) as a Comprehensive 3D SR referencing the SEG
    at ``seg_path`` (written for the same mask) and the ``source`` series (pydicom datasets).
    Returns the path."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    seg = pydicom.dcmread(str(seg_path))
    model = report.get("model") or {}
    name = str((model.get("model") or {}).get("name", "hemato"))
    algorithm = hd.sr.AlgorithmIdentification(
        name=f"hemato {name}", version=hemato.__version__, parameters=[f"model sha256 {model.get('sha256', '')}"[:64]]
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="hemato", manufacturer_name="hemato", model_name=name
        ),
    )
    segment = hd.sr.ReferencedSegment(
        sop_class_uid=str(seg.SOPClassUID),
        sop_instance_uid=str(seg.SOPInstanceUID),
        segment_number=1,
        source_series=hd.sr.SourceSeriesForSegmentation(str(source[0].SeriesInstanceUID)),
    )

    def group(label: str, measurements: list[Any], flags: list[Any] | None = None) -> Any:
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label),
            referenced_segment=segment,
            finding_type=codes.SCT.IntracranialHemorrhage,
            algorithm_id=algorithm,
            finding_sites=[hd.sr.FindingSite(codes.SCT.Brain)],
            measurements=measurements or None,
            qualitative_evaluations=flags,
        )

    def volume(ml: float, method: Any) -> Any:
        return hd.sr.Measurement(
            name=codes.SCT.Volume, value=float(ml), unit=_ml(), method=method, algorithm_id=algorithm
        )

    def length(code: Any, mm: float) -> Any:
        return hd.sr.Measurement(name=code, value=float(mm), unit=codes.UCUM.Millimeter, algorithm_id=algorithm)

    planimetric, ellipsoid = codes.DCM.SumOfSegmentedVoxelMethodForVolume, codes.DCM.LWHMethodForVolumeOfEllipsoid
    total = []
    if report.get("volume_ml") is not None:
        total.append(volume(report["volume_ml"], planimetric))
    abc = report.get("abc2") or {}
    if abc.get("volume_ml") is not None:
        total.append(volume(abc["volume_ml"], ellipsoid))
    groups = [group("all bleeds", total, _flags(report))]
    for k, b in enumerate(abc.get("bleeds", []), start=1):
        ms = [volume(b["planimetric_ml"], planimetric), volume(b["volume_ml"], ellipsoid)]
        ms += [
            length(c, b[f"{x}_mm"])
            for c, x in ((codes.SCT.LongAxis, "A"), (codes.SCT.PerpendicularAxis, "B"), (codes.DCM.Height, "C"))
        ]
        groups.append(group(f"bleed {k}", ms))
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.ComputedTomographyOfHead,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[*source, seg],
        content=content[0],
        series_instance_uid=hd.UID(),
        series_number=9902,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="hemato",
        series_description="hemato hemorrhage volume (research use)",
    )
    path = Path(path)
    sr.save_as(path)
    return path


def read_dicom_sr(path: str | Path) -> dict[str, Any]:
    """An SR written by :func:`write_dicom_sr` back as ``{"volume_ml", "abc2_ml", "status",
    "unsure", "bleeds": [{"planimetric_ml", "abc2_ml", "A_mm", "B_mm", "C_mm"}]}`` (highdicom)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sr = hd.sr.srread(str(path))
    out: dict[str, Any] = {"bleeds": []}
    for g in sr.content.get_volumetric_roi_measurement_groups():
        vols = {m.method.value: m.value for m in g.get_measurements(name=codes.SCT.Volume)}
        ident = g.tracking_identifier
        if ident == "all bleeds":
            out["volume_ml"] = vols.get(codes.DCM.SumOfSegmentedVoxelMethodForVolume.value)
            out["abc2_ml"] = vols.get(codes.DCM.LWHMethodForVolumeOfEllipsoid.value)
            ev = {e.name.value: e.value for e in g.get_qualitative_evaluations()}
            out["status"] = ev[STATUS].meaning
            out["unsure"] = ev[UNSURE].value == "UNSURE"
        else:
            one = {
                "planimetric_ml": vols[codes.DCM.SumOfSegmentedVoxelMethodForVolume.value],
                "abc2_ml": vols[codes.DCM.LWHMethodForVolumeOfEllipsoid.value],
            }
            for code, x in ((codes.SCT.LongAxis, "A"), (codes.SCT.PerpendicularAxis, "B"), (codes.DCM.Height, "C")):
                one[f"{x}_mm"] = g.get_measurements(name=code)[0].value
            out["bleeds"].append(one)
    return out
