"""One scan in, a report folder out: read -> check -> segment -> measure -> write.

:func:`predict` is the one path every caller takes (the CLI, cohorts, the DICOM node,
compare, bench); each stage has its module (:mod:`hemato.data.readers.scan`,
:mod:`~hemato.predict.check`, :mod:`hemato.engine`, :mod:`~hemato.predict.measure`,
:mod:`~hemato.predict.write`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

import hemato
from hemato.data.readers.errors import InputError
from hemato.data.readers.scan import read_scan
from hemato.engine import Contract, confidence, label_bleeds, segment
from hemato.inference import set_threads
from hemato.predict.check import check_scan, input_qc, override_geometry
from hemato.predict.measure import bleed_geometry, measure, validation_summary
from hemato.predict.write import write_report
from hemato.privacy import pseudonym
from hemato.report_schema import ScanReport
from hemato.scan_checks import intensity_profile
from hemato.weights import load as loader
from hemato.weights.load import LoadedModel, check_device


def input_fingerprint(path: str | Path) -> str:
    """SHA-256 over the input's files' names, sizes and modification times (a cheap identity:
    a batch resumes past a scan only if its input is unchanged)."""
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if p.is_dir() else f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def input_name(path: str | Path) -> str:
    return Path(path).name.removesuffix(".gz").removesuffix(".nii")


def predict(
    checkpoint: str | Path | None,
    input: str | Path,
    output: str | Path,
    spacing: tuple[float, float] | None = None,
    thickness: float | None = None,
    device: str = "cpu",
    tta: bool = False,
    batch_size: int = 16,
    threshold: float | None = None,
    patient_id: str | None = None,
    progress: bool = False,
    keep_names: bool = False,
    crop: bool = True,
    threads: int | None = None,
    intensity: str = "auto",
    series_uid: str | None = None,
    precision: str = "32",
    loaded: LoadedModel | None = None,
    dicom_seg: bool = False,
    manifest_patient: str | None = None,
    assume_ct: bool = False,
    dicom_sr: bool = False,
) -> dict[str, Any]:
    """Segment one scan and write the report into ``output``; returns the report dict.

    ``dicom_seg``: for DICOM input, also write ``seg.dcm``, the mask as a DICOM Segmentation
    referencing the source series (it carries the source's patient identifiers);
    ``dicom_sr``: also ``sr.dcm``, the report's volumes, ABC/2 per bleed and flags as a
    DICOM Structured Report (TID 1500) referencing that SEG (written too) and the series.
    ``loaded``: a model already loaded (by :func:`hemato.weights.load.load_model`, e.g. once for a cohort);
    ``checkpoint`` is then only its name in the report.

    ``thickness`` is the SLICE SPACING in mm (distance between slice centres, which is what
    a planimetric volume needs; on overlapping reconstructions it is smaller than the
    nominal slice thickness). ``intensity``: ``auto`` (HU inputs must look like HU),
    ``hu`` or ``windowed`` (see :func:`hemato.data.readers.scan.read_scan`); ``series_uid`` picks a DICOM series;
    ``assume_ct`` measures DICOM secondary captures (Modality OT/SC) as CT in HU.

    ``crop`` runs the network on the head region only and skips slices without head
    (``hemato.inference``; torch checkpoints only, ONNX graphs have a fixed size); ``threads``
    defaults to the physical cores.

    The report names the patient ``patient_id`` if given, else a salted pseudonym of the
    input's name (``hemato.privacy``), or the input's name itself with ``keep_names``.
    The report follows :class:`hemato.report_schema.ScanReport` (returned as report.json's dict)."""
    n_threads = set_threads(threads)
    device = check_device(device)
    out = Path(output)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "report.json").is_file())):
        raise InputError(
            out, "output exists and is not an empty folder or an earlier hemato report: give a new or empty folder"
        )
    if checkpoint is None and loaded is None:
        checkpoint = loader.default_checkpoint()
    model = loaded if loaded is not None else loader.load_model(checkpoint, device, precision=precision)
    con = model.contract
    if threshold is not None:
        con = Contract.from_dict({**con.as_dict(), "threshold": float(threshold)})
    # read -> check
    scan = read_scan(input, con.window_level, con.window_width, intensity, series_uid, manifest_patient, assume_ct)
    if (dicom_seg or dicom_sr) and scan.kind != "dicom":
        raise InputError(input, f"--dicom-{'sr' if dicom_sr else 'seg'} needs a DICOM series as input")
    crop = bool(crop and con.crop_to_head and getattr(model.forward, "size_divisor", None) is not None)
    override_geometry(scan, spacing, thickness, input)
    warnings = check_scan(scan, con, input)
    # segment
    probs, mask = segment(
        model.forward,
        scan.image,
        con,
        batch_size=batch_size,
        tta=tta,
        progress=progress,
        crop=crop,
        spacing_mm=scan.spacing_mm,
    )
    bleeds = label_bleeds(mask)  # labelled once for the confidence, the bleed geometry and ABC/2
    conf = confidence(probs, con, bleeds=bleeds, images=scan.image, spacing_mm=scan.spacing_mm, mask=mask)
    profile = intensity_profile(scan.image, con.window_level, con.window_width)
    # measure
    measured, slices, more_warnings = measure(scan, mask, probs, bleeds, con, model.identity)
    warnings += more_warnings
    extents = scan.slice_extents_mm
    # one manifest holds many patients: the patient picked is part of the scan's name
    name = input_name(input) + (f":{manifest_patient}" if manifest_patient else "")
    report: dict[str, Any] = {
        "patient": patient_id or (name if keep_names else pseudonym(name)),
        "volume_ml": None,
        "volume_status": "ok",
        "abc2": None,
        "n_bleed_slices": int(sum(s["area_px"] > 0 for s in slices)),
        "n_slices": int(mask.shape[0]),
        "spacing_mm": list(scan.spacing_mm) if scan.spacing_mm else None,
        "slice_spacing_mm": scan.thickness_mm if extents is None else [round(float(e), 4) for e in extents],
        "geometry_source": scan.source,
        "input": {
            "path": str(input) if keep_names else None,
            "kind": scan.kind,
            "shape": list(scan.image.shape),
            "fingerprint": input_fingerprint(input),
        },
        "model": model.identity,
        "model_trained_on": con.trained_on,
        "model_validation": validation_summary(model.identity),
        "warnings": warnings,
        "confidence": conf,
        "input_qc": input_qc(scan, profile=profile),
        "intensity": profile,
        "patient_key": (scan.dicom_geometry or {}).get("patient_key"),
        "bleeds": bleed_geometry(mask, scan, bleeds),
        "threshold": con.threshold,
        "contract": con.as_dict(),
        "tta": tta,
        "inference": {
            "crop_to_head": crop,
            "device": "cpu (onnxruntime CPU provider)" if model.identity.get("format") == "onnx" else device,
            "threads": n_threads,
            "precision": model.identity.get("precision"),
        },
        "software": {"hemato": hemato.__version__, "torch": torch.__version__},
    }
    report.update(measured)  # volume_ml, volume_status, abc2 in place; detection_limit, finding, coverage
    filled = ScanReport(**report, slices=slices)  # the one report schema (hemato.report_schema)
    # write
    return write_report(out, scan, mask, filled, checkpoint, dicom_seg=dicom_seg, dicom_sr=dicom_sr)
