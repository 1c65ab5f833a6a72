"""Writing a report folder: report.json / report.csv / slices.csv, report.html, the mask in
the input's geometry (NIfTI; PNG per slice; DICOM SEG and SR on request) and overlays, through
a temporary folder put in place whole, so an error never leaves a partial report."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hemato.data.readers.images import write_mask_pngs
from hemato.data.readers.nifti import write_mask_nifti
from hemato.data.readers.scan import Scan, natural_key
from hemato.report_schema import ScanReport


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows (same keys) -> a CSV with a header; None is an empty cell."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def overlay(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    cnts, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, cnts, -1, (0, 0, 255), 1)
    return rgb


def write_report(
    out: Path,
    scan: Scan,
    mask: np.ndarray,
    report: ScanReport,
    checkpoint: str | Path | None,
    dicom_seg: bool = False,
    dicom_sr: bool = False,
) -> dict[str, Any]:
    """Write the report folder ``out`` for ``mask`` (Z, H, W) on ``scan``: every file reads
    ``report`` (:class:`hemato.report_schema.ScanReport`). An earlier report in ``out`` is
    replaced entirely (no stale mask or overlay remains). Returns report.json's dict."""
    doc = report.as_dict()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "overlays").mkdir()
        for k in (k for k, s in enumerate(report.slices) if s.area_px):
            cv2.imwrite(str(tmp / "overlays" / f"slice_{scan.slice_names[k]}.png"), overlay(scan.image[k], mask[k]))
        if scan.kind in ("nifti", "dicom"):
            write_mask_nifti(scan, mask, tmp / "mask.nii.gz")
        if dicom_seg or dicom_sr:
            from hemato.data.readers.dicom_seg import write_dicom_seg

            write_dicom_seg(
                scan.dicom_geometry["datasets"],
                mask,
                tmp / "seg.dcm",
                model_name=str(report.model.get("model", {}).get("name", "hemato")),
                frames=scan.dicom_geometry.get("frames"),
            )
        else:
            write_mask_pngs(mask, scan.slice_names, tmp / "mask")
        write_csv(tmp / "slices.csv", doc["slices"])
        write_csv(tmp / "report.csv", [report.csv_row(checkpoint)])
        (tmp / "report.json").write_text(json.dumps(doc, indent=2))
        if dicom_sr:
            from hemato.dicom_sr import write_dicom_sr

            write_dicom_sr(doc, scan.dicom_geometry["datasets"], tmp / "seg.dcm", tmp / "sr.dcm")
        from hemato.predict.page import render_scan_page

        (tmp / "report.html").write_text(
            render_scan_page(doc, sorted((tmp / "overlays").glob("*.png"), key=natural_key))
        )
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
            out.replace(old)
        tmp.replace(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return doc
