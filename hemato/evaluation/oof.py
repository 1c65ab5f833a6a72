"""Out-of-fold evaluation of a finished run through the engine (``python -m hemato.cv evaluate``):
per (patient, rotation) and per slice overlap, every predicted component before the
contract's rules; the collection's assumed geometry."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hemato.engine import (
    Contract,
    candidates,
    component_features,
    confidence,
    label_bleeds,
    scan_counts,
)
from hemato.evaluation.loop import segment_patients
from hemato.metrics.overlap import overlap_scores
from hemato.rundir import tested_checkpoint, write_atomic

ASSUMED_SPACING_MM = 0.45
ASSUMED_SLICE_MM = 5.0  # the collection's slice spacing (its description)
FP_AREA_MM2 = 10.0
VOXEL_ML = ASSUMED_SPACING_MM**2 * ASSUMED_SLICE_MM / 1000.0  # one 512 px voxel at the assumed spacing
FOUND_DICE = 0.2
SIZE_BINS = (("< 2 ml", 0.0, 2.0), ("2-10 ml", 2.0, 10.0), ("> 10 ml", 10.0, math.inf))  # ml at the assumed spacing


def largest_component_px(mask: np.ndarray) -> int:
    """Voxel count of the largest 26-connected component of a (Z, H, W) mask (0 if empty)."""
    if not mask.any():
        return 0
    labels, _ = label_bleeds(mask)
    return int(np.bincount(labels.ravel())[1:].max())


def load_records(run_dir: Path, patients: list[str]) -> list[Any]:
    """The run's data source (from its config.yaml) loaded, restricted to ``patients``."""
    import hydra

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    source = hydra.utils.instantiate(cfg["data"]["source"])
    records = {r.patient_id: r for r in source.load()}
    missing = [p for p in patients if p not in records]
    if missing:
        raise FileNotFoundError(f"{run_dir}: test patients not in the data source: {missing[:5]}")
    return [records[p] for p in patients]


def component_rows(probs: np.ndarray, images: np.ndarray, truth: np.ndarray, con: Contract) -> list[dict[str, Any]]:
    """Every 3D component of the contract's :func:`hemato.engine.candidates` (above the
    threshold, before the component rules), one dict each: :func:`hemato.engine.component_features`
    and the voxels shared with ``truth``; what ``calibrate`` chooses its rules on."""
    labels, n = label_bleeds(candidates(probs, con, images))
    if not n:
        return []
    f = component_features(labels, n, con, probs, images)
    inter = np.bincount(labels[truth], minlength=n + 1)[1:]
    return [
        {
            "voxels": int(f["voxels"][i]),
            "grid_px": float(f["grid_px"][i]),
            "peak": float(f["peak"][i]),
            "mean_hu": float(f["mean_hu"][i]),
            "inter": int(inter[i]),
        }
        for i in range(n)
    ]


def evaluate_run(
    run_dir: str | Path,
    rotations: tuple[int, ...] = (0,),
    contract: dict[str, Any] | None = None,
    checkpoint: str | Path | None = None,
    write: bool = True,
    out_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-fold evaluation of one finished run through the engine.

    Returns ``(patients, slices)``: one row per (patient, rotation) and per (patient,
    rotation, slice). ``contract`` overrides fields of the checkpoint's contract (e.g.
    ``{"min_component_px": 0, "tta": True}``); ``checkpoint`` defaults to the run's tested
    checkpoint. The files go to the run folder, or with ``out_dir`` to ``out_dir/<run
    name>/`` together with copies of the run's config, split and metrics (so another contract
    can be evaluated without touching the run's own results).
    """
    from hemato.weights.load import load_model

    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    split = json.loads((run_dir / "split.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    ckpt = Path(checkpoint) if checkpoint else tested_checkpoint(run_dir, metrics)
    model = load_model(ckpt)
    con = model.contract
    if contract:
        con = Contract.from_dict({**con.as_dict(), **contract})
    test = split["split"]["test"]
    records = load_records(run_dir, test)
    prow, srows, crows = [], [], []
    masks0: list[tuple[Any, np.ndarray]] = []
    for seg in segment_patients(model.forward, records, con, rotations):
        rec, truth, mask, angle = seg.record, seg.truth, seg.mask, seg.angle
        upright = angle // 90 % 4 == 0  # the unrotated input: confidence, components, saved masks
        conf = confidence(seg.probs, con, images=seg.image) if upright else None
        if upright:
            masks0.append((rec, mask))
            crows += [
                {"patient_id": rec.patient_id, "fold": split.get("fold"), "component": i, **row}
                for i, row in enumerate(component_rows(seg.probs, seg.image, truth, con), start=1)
            ]
        c = scan_counts(mask, truth)
        sc = overlap_scores(c["inter"], c["pred"], c["gt"])
        for z in range(len(c["gt"])):
            srows.append(
                {
                    "patient_id": rec.patient_id,
                    "rotation": int(angle),
                    "slice_index": int(rec.slice_index[z]),
                    "inter": int(c["inter"][z]),
                    "pred": int(c["pred"][z]),
                    "gt": int(c["gt"][z]),
                    "dice": sc["dice"][z],
                    "iou": sc["iou"][z],
                    "rvd": sc["rvd"][z],
                }
            )
        tot = {k2: int(v.sum()) for k2, v in c.items()}
        ps = overlap_scores(np.array([tot["inter"]]), np.array([tot["pred"]]), np.array([tot["gt"]]))
        prow.append(
            {
                "patient_id": rec.patient_id,
                "rotation": int(angle),
                "model": cfg["model"]["name"],
                "run": run_dir.name,
                "fold": split.get("fold"),
                **tot,
                "dice": ps["dice"][0],
                "iou": ps["iou"][0],
                "rvd": ps["rvd"][0],
                "rvd_signed": ps["rvd_signed"][0],
                "n_slices": int(len(c["gt"])),
                "bleed_slices_true": int((c["gt"] > 0).sum()),
                "bleed_slices_pred": int((c["pred"] > 0).sum()),
                "largest_component_px": largest_component_px(mask),
                "unsure": conf["unsure"] if conf else None,
                "relative_spread": conf["relative_spread"] if conf else None,
                "kinds": rec.tags.get("kinds") if isinstance(rec.tags, dict) else None,
            }
        )
    patients, slices = pd.DataFrame(prow), pd.DataFrame(srows)
    if write:
        from hemato.rundir import save_prediction

        dest = run_dir
        if out_dir is not None:
            import shutil

            dest = Path(out_dir) / run_dir.name
            dest.mkdir(parents=True, exist_ok=True)
            for name in ("config.yaml", "split.json", "metrics.json"):
                shutil.copyfile(run_dir / name, dest / name)
        pred_dir = dest / "oof_predictions"
        pred_dir.mkdir(exist_ok=True)
        for rec, m in masks0:
            save_prediction(
                pred_dir / f"{rec.patient_id}.npz",
                rec.image,
                rec.mask,
                m,
                rec.spacing_mm,
                rec.thickness_mm,
                rec.slice_index,
            )
        cols = ["patient_id", "fold", "component", "voxels", "grid_px", "peak", "mean_hu", "inter"]
        write_atomic(dest / "oof_components.csv", pd.DataFrame(crows, columns=cols).to_csv(index=False))
        write_atomic(dest / "oof_patients.csv", patients.to_csv(index=False))
        write_atomic(dest / "oof_slices.csv", slices.to_csv(index=False))
        write_atomic(
            dest / "oof_contract.json", json.dumps({"checkpoint": str(ckpt), "contract": con.as_dict()}, indent=2)
        )
    return patients, slices


def by_size(bleed: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per-patient rows with ``gt`` (voxels) split by true size (:data:`SIZE_BINS`, ml at
    the assumed spacing): ``[(bin name, its rows)]``."""
    ml = bleed["gt"] * VOXEL_ML
    return [(name, bleed[(ml >= lo) & (ml < hi)]) for name, lo, hi in SIZE_BINS]


def found_by_size(bleed: pd.DataFrame) -> list[dict[str, Any]]:
    """Bleeds found (Dice >= :data:`FOUND_DICE`) per true size bin (:data:`SIZE_BINS`, ml at
    the assumed spacing) of per-patient rows with ``gt`` (voxels) and ``dice``."""
    return [
        {"size": name, "n": int(len(g)), "found": int((g["dice"] >= FOUND_DICE).sum())} for name, g in by_size(bleed)
    ]
