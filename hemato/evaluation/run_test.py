"""Per-patient evaluation export of a finished run (rank 0, after ``trainer.test``).

For every test patient: whole-scan inference with the best network (hemato.inference), the
predicted mask saved beside image and truth (``predictions/<id>.npz``, for the report's
overlay figures), automatic ABC/2 of the reference and the predicted masks, and the subgroup
measurements (solidity, distance to the skull) computed from the truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hemato.data.records import VolumeRecord
from hemato.engine import Contract, scan_counts
from hemato.evaluation.loop import segment_patients
from hemato.metrics.subgroups import SubgroupThresholds, tag_patient
from hemato.metrics.volume import abc2, planimetric_volume_ml
from hemato.rundir import save_prediction


def evaluate_patients(
    net: torch.nn.Module,
    records: list[VolumeRecord],
    contract: Contract,
    out_dir: Path | None = None,
    thresholds: SubgroupThresholds | None = None,
    batch_size: int = 16,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segment each patient through the engine (``hemato.engine.segment``: the path
    ``hemato.predict`` takes) and measure it.

    Returns ``(patients, slices)``: per patient the planimetric and ABC/2 volumes (truth and
    prediction), A/B/C (mm), subgroup measurements and automatic tags; per slice the pixel
    counts (``inter``, ``pred``, ``gt``) with ``patient_id``, ``slice_index``,
    ``pixel_area_mm2``, ``thickness_mm``. Writes ``out_dir/<id>.npz`` if given."""
    rows, slice_rows = [], []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for seg in segment_patients(net, records, contract, batch_size=batch_size):
        rec, pred, truth = seg.record, seg.mask, seg.truth
        c = scan_counts(pred, truth)
        slice_rows.append(
            pd.DataFrame(
                {
                    "patient_id": rec.patient_id,
                    "slice_index": np.asarray(rec.slice_index),
                    **c,
                    "pixel_area_mm2": rec.pixel_area_mm2,
                    "thickness_mm": float(rec.thickness_mm) if rec.thickness_mm else np.nan,
                }
            )
        )
        row: dict[str, Any] = {"patient_id": rec.patient_id}
        if rec.spacing_mm is not None and rec.thickness_mm is not None:
            row["pred_volume_ml_export"] = planimetric_volume_ml(pred, rec.spacing_mm, rec.thickness_mm)
            for name, m in (("true", truth), ("pred", pred)):
                a = abc2(m, rec.spacing_mm, rec.thickness_mm)
                row.update(
                    {
                        f"{name}_abc2_ml": a["volume_ml"],
                        f"{name}_A_mm": a["A_mm"],
                        f"{name}_B_mm": a["B_mm"],
                        f"{name}_C_mm": a["C_mm"],
                    }
                )
        row.update(tag_patient(rec.image, truth, rec.spacing_mm, thresholds))
        if out_dir is not None:
            save_prediction(
                out_dir / f"{rec.patient_id}.npz",
                rec.image,
                rec.mask,
                pred,
                rec.spacing_mm,
                rec.thickness_mm,
                rec.slice_index,
            )
        rows.append(row)
    return pd.DataFrame(rows), pd.concat(slice_rows, ignore_index=True) if slice_rows else pd.DataFrame()
