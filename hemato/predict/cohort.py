"""Whole cohorts: every scan of a folder through :func:`hemato.predict.pipeline.predict` with
one model load, a ``summary.csv``, resumable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hemato.data.readers.errors import InputError
from hemato.predict.pipeline import input_fingerprint, input_name, predict
from hemato.privacy import pseudonym
from hemato.report_schema import ScanReport
from hemato.rundir import write_atomic
from hemato.weights import load as loader

if TYPE_CHECKING:  # pandas only for cohorts: a single prediction does not pay its import
    import pandas as pd


def scans_in(folder: Path) -> list[Path]:
    """One scan per entry of a cohort folder: sub-folders (DICOM or slices), NIfTI files,
    one-patient manifests, multi-frame DICOM files; sorted by name, hidden entries skipped."""
    from hemato.data.readers.dicom import is_dicom_file

    out = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        n = p.name.lower()
        if p.is_dir() or n.endswith((".nii", ".nii.gz", ".csv")) or is_dicom_file(p):
            out.append(p)
    return out


def predict_cohort(
    checkpoint: str | Path | None,
    input_dir: str | Path,
    output: str | Path,
    keep_names: bool = False,
    progress: bool = True,
    **kw: Any,
) -> pd.DataFrame:
    """Every scan of ``input_dir`` into ``output/<name>/`` with one model load, and
    ``output/summary.csv`` (one row per scan: status ok / error with its one-line message /
    done before). A scan whose report exists for the same input (fingerprint) is not redone,
    so an interrupted batch resumes. Folder names are pseudonymised unless ``keep_names``."""
    import pandas as pd

    src, out = Path(input_dir), Path(output)
    if not src.is_dir():
        raise InputError(src, "--input-dir must be a folder of scans")
    scans = scans_in(src)
    if not scans:
        raise InputError(src, "no scans (sub-folders, NIfTI files or manifests) in the folder")
    out.mkdir(parents=True, exist_ok=True)
    if checkpoint is None:
        checkpoint = loader.default_checkpoint()
    model = loader.load_model(checkpoint, kw.get("device", "cpu"), precision=kw.pop("precision", "32"))
    rows = []
    it = scans
    if progress:
        from tqdm import tqdm

        it = tqdm(scans, desc="scans", unit="scan")
    for scan in it:
        name = input_name(scan) if keep_names else pseudonym(input_name(scan))
        dest = out / name
        row: dict[str, Any] = {"scan": name, "input": str(scan) if keep_names else None}
        try:
            done = dest / "report.json"
            r = json.loads(done.read_text()) if done.is_file() else {}
            if r.get("input", {}).get("fingerprint") == input_fingerprint(scan):
                row["status"] = "done before"
            else:
                r = predict(checkpoint, scan, dest, keep_names=keep_names, patient_id=name, loaded=model, **kw)
                row["status"] = "ok"
            row.update({**ScanReport.from_dict(r, dest).summary_row(), "error": None})
        except InputError as e:
            row.update({"status": "error", "error": str(e)})
        rows.append(row)
    table = pd.DataFrame(rows)
    write_atomic(out / "summary.csv", table.to_csv(index=False))
    return table
