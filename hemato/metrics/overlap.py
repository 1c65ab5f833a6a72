"""Dice, IoU and relative volume difference, per slice and per patient (3D).

Definitions (docs/paper.md, section 4), with P the predicted and G the true hematoma voxels:

* Dice = 2|P n G| / (|P| + |G|)
* IoU  = |P n G| / |P u G|
* Rvd  = | |P| - |G| | / |G|   (absolute);  signed Rvd = (|P| - |G|) / |G|

Empty ground truth: a slice (or patient) with |G| = 0 has no defined Rvd and a Dice that is
0 or undefined. By default (``empty="exclude"``) such slices/patients are left out of the
Dice/IoU/Rvd means, and reported separately as false-positive counts; with ``empty="score"``
an empty-vs-empty case scores Dice = IoU = 1 and an empty-G case with a prediction scores
Dice = IoU = 0 (Rvd stays excluded). Per-patient values sum the counts over all slices
first (true 3D overlap), they are not means of slice scores.

``SliceStats`` is a torchmetrics ``Metric`` holding per-slice counts, so it is correct when
updated batch by batch and when synced across DDP processes (cat states; duplicate
(patient, slice) rows that DistributedSampler padding creates are dropped in ``compute``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torchmetrics import Metric

from hemato.metrics.volume import mae, rmse

EMPTY_POLICIES = ("exclude", "score")


def overlap_scores(
    inter: np.ndarray, pred: np.ndarray, gt: np.ndarray, empty: str = "exclude"
) -> dict[str, np.ndarray]:
    """Dice, IoU, Rvd, signed Rvd from voxel counts (arrays of equal shape).

    Returns float arrays; NaN marks a value excluded by the empty-ground-truth policy.
    """
    if empty not in EMPTY_POLICIES:
        raise ValueError(f"empty must be one of {EMPTY_POLICIES}, got {empty!r}")
    inter = np.asarray(inter, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    union = pred + gt - inter
    has_gt = gt > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dice = np.where(has_gt, 2 * inter / (pred + gt), np.nan)
        iou = np.where(has_gt, inter / union, np.nan)
        rvd_signed = np.where(has_gt, (pred - gt) / gt, np.nan)
    if empty == "score":
        both_empty = ~has_gt & (pred == 0)
        dice = np.where(both_empty, 1.0, np.where(~has_gt, 0.0, dice))
        iou = np.where(both_empty, 1.0, np.where(~has_gt, 0.0, iou))
    return {"dice": dice, "iou": iou, "rvd": np.abs(rvd_signed), "rvd_signed": rvd_signed}


class SliceStats(Metric):
    """Accumulates one row per evaluated slice.

    ``update(patient, slice_index, inter, pred, gt, pixel_area_mm2, thickness_mm)`` with 1D
    tensors of equal length; counts are pixels at the evaluation (native) resolution.
    ``compute()`` returns a dict of 1D float64/int64 tensors, one entry per unique slice.
    """

    full_state_update = False
    FIELDS = ("patient", "slice_index", "inter", "pred", "gt", "pixel_area_mm2", "thickness_mm")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in self.FIELDS:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        patient: torch.Tensor,
        slice_index: torch.Tensor,
        inter: torch.Tensor,
        pred: torch.Tensor,
        gt: torch.Tensor,
        pixel_area_mm2: torch.Tensor,
        thickness_mm: torch.Tensor,
    ) -> None:  # noqa: E501
        values = (patient, slice_index, inter, pred, gt, pixel_area_mm2, thickness_mm)
        n = len(patient)
        for name, v in zip(self.FIELDS, values):
            t = torch.as_tensor(v, device=self.device).reshape(-1)
            if len(t) != n:
                raise ValueError(f"SliceStats.update: {name} has {len(t)} values, expected {n}")
            dtype = torch.float64 if name in ("pixel_area_mm2", "thickness_mm") else torch.int64
            getattr(self, name).append(t.to(dtype))

    def compute(self) -> dict[str, torch.Tensor]:
        cols = {}
        for name in self.FIELDS:
            state = getattr(self, name)
            if isinstance(state, list):
                state = torch.cat(state) if state else torch.zeros(0)
            cols[name] = state.reshape(-1)
        if len(cols["patient"]):
            # unique (patient, slice) rows; a 2-column key cannot collide whatever the indices
            key = np.stack(
                [cols["patient"].to(torch.int64).cpu().numpy(), cols["slice_index"].to(torch.int64).cpu().numpy()], 1
            )
            _, first = np.unique(key, axis=0, return_index=True)
            idx = torch.as_tensor(np.sort(first), device=cols["patient"].device)
            cols = {k: v[idx] for k, v in cols.items()}
        return cols


def slice_table(
    stats: dict[str, torch.Tensor], patient_ids: list[str] | None = None, empty: str = "exclude"
) -> pd.DataFrame:
    """One row per slice: counts, areas (mm^2) and Dice/IoU/Rvd of that slice."""
    # torchmetrics squeezes one-element results to 0-d tensors: keep them 1-D
    df = pd.DataFrame({k: np.atleast_1d(v.cpu().numpy()) for k, v in stats.items()})
    if df.empty:
        return df
    scores = overlap_scores(df["inter"].to_numpy(), df["pred"].to_numpy(), df["gt"].to_numpy(), empty)
    for k, v in scores.items():
        df[k] = v
    df["pred_area_mm2"] = df["pred"] * df["pixel_area_mm2"]
    df["true_area_mm2"] = df["gt"] * df["pixel_area_mm2"]
    if patient_ids is not None:
        df.insert(0, "patient_id", [patient_ids[i] for i in df["patient"]])
    return df.sort_values(["patient", "slice_index"]).reset_index(drop=True)


def patient_table(slices: pd.DataFrame, empty: str = "exclude") -> pd.DataFrame:
    """One row per patient: 3D counts, Dice/IoU/Rvd, predicted and true volume (ml)."""
    if slices.empty:
        return slices
    keys = ["patient"] + (["patient_id"] if "patient_id" in slices else [])
    g = slices.groupby(keys, sort=True)
    df = g[["inter", "pred", "gt"]].sum().reset_index()
    thickness = g["thickness_mm"].first().to_numpy()
    df["n_slices"] = g.size().to_numpy()
    df["bleed_slices_true"] = g["gt"].apply(lambda s: int((s > 0).sum())).to_numpy()
    df["bleed_slices_pred"] = g["pred"].apply(lambda s: int((s > 0).sum())).to_numpy()
    df["thickness_mm"] = thickness
    # NaN areas (unknown spacing) must give a NaN volume, never pandas' NaN-skipping 0 ml
    # (a plain numpy sum propagates NaN; GroupBy.sum(skipna=...) exists only from pandas 3)
    df["pred_volume_ml"] = g["pred_area_mm2"].agg(lambda s: float(np.sum(s.to_numpy()))).to_numpy() * thickness / 1000.0
    df["true_volume_ml"] = g["true_area_mm2"].agg(lambda s: float(np.sum(s.to_numpy()))).to_numpy() * thickness / 1000.0
    scores = overlap_scores(df["inter"].to_numpy(), df["pred"].to_numpy(), df["gt"].to_numpy(), empty)
    for k, v in scores.items():
        df[k] = v
    df["volume_error_ml"] = df["pred_volume_ml"] - df["true_volume_ml"]
    return df


def summarize(slices: pd.DataFrame, patients: pd.DataFrame, prefix: str = "") -> dict[str, float]:
    """Means over slices and patients (NaN-excluded), volume RMSE/MAE (ml), FP counts."""

    def mean(s: pd.Series) -> float:
        v = s.dropna()
        return float(v.mean()) if len(v) else math.nan

    out: dict[str, float] = {}
    if slices.empty:
        return out
    for m in ("dice", "iou", "rvd", "rvd_signed"):
        out[f"{prefix}{m}_slice"] = mean(slices[m])
        out[f"{prefix}{m}_patient"] = mean(patients[m])
    # volumes only where the spacing is known (``n_volume_patients`` says how many)
    known = np.isfinite(patients["pred_volume_ml"].to_numpy(float)) & np.isfinite(
        patients["true_volume_ml"].to_numpy(float)
    )
    out[f"{prefix}volume_rmse_ml"] = rmse(patients["pred_volume_ml"][known], patients["true_volume_ml"][known])
    out[f"{prefix}volume_mae_ml"] = mae(patients["pred_volume_ml"][known], patients["true_volume_ml"][known])
    out[f"{prefix}n_volume_patients"] = float(known.sum())
    empty_s = slices["gt"] == 0
    empty_p = patients["gt"] == 0
    out[f"{prefix}n_slices"] = float(len(slices))
    out[f"{prefix}n_patients"] = float(len(patients))
    out[f"{prefix}n_patients_with_bleed"] = float((~empty_p).sum())
    out[f"{prefix}fp_slices"] = float((empty_s & (slices["pred"] > 0)).sum())
    out[f"{prefix}fp_patients"] = float((empty_p & (patients["pred"] > 0)).sum())
    return out
