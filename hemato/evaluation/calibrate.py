"""The contract's component rules chosen by cross-validation (``python -m hemato.cv calibrate``):
leave-one-fold-out over the out-of-fold component tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hemato.evaluation.cv_report import find_oof_runs, fp_threshold_px
from hemato.evaluation.oof import FOUND_DICE, found_by_size
from hemato.evaluation.stats import bootstrap_ci

# ------------------------------------------------------------------------------ calibrate
# The component rules calibrate searches (the contract's units): minimum size in network-grid
# pixels, minimum highest probability, minimum mean HU (None = no HU rule).
GRID_MIN_PX = (0, 16, 32, 64, 128, 256, 512, 1024, 2048)
GRID_PEAK = (0.0, 0.9, 0.95, 0.99)
GRID_HU: tuple[float | None, ...] = (None, 40.0, 45.0, 50.0, 55.0, 60.0)


def _components(runs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(components, patients at rotation 0) of one model's out-of-fold runs."""
    missing = [r for r in runs if not (r / "oof_components.csv").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{missing[0]}: no oof_components.csv; run `python -m hemato.cv evaluate` with this version of hemato"
        )
    comps = pd.concat(
        [pd.read_csv(r / "oof_components.csv", dtype={"patient_id": str}) for r in runs], ignore_index=True
    )
    pats = pd.concat([pd.read_csv(r / "oof_patients.csv", dtype={"patient_id": str}) for r in runs], ignore_index=True)
    pats = pats[pats["rotation"] == 0].set_index("patient_id")
    return comps, pats


def _scores_with(comps: pd.DataFrame, pats: pd.DataFrame, rule: tuple[float, float, float | None]) -> pd.DataFrame:
    """Per patient, with the components that pass ``rule`` = (min grid px, min peak, min
    HU): Dice (patients with bleed) and whether a bleed-free patient keeps a bleed (the FP
    rule)."""
    min_px, peak, hu = rule
    keep = (comps["grid_px"] >= min_px) & (comps["peak"] >= peak)
    if hu is not None:
        keep &= comps["mean_hu"] >= hu
    k = comps[keep].groupby("patient_id").agg(inter=("inter", "sum"), pred=("voxels", "sum"), big=("voxels", "max"))
    t = pats[["fold", "gt"]].join(k).fillna({"inter": 0, "pred": 0, "big": 0})
    gt = t["gt"].to_numpy(float)
    t["dice"] = np.where(gt > 0, 2 * t["inter"] / np.maximum(t["pred"] + gt, 1), np.nan)
    t["fp"] = (t["gt"] == 0) & (t["big"] >= fp_threshold_px())
    return t


def _best_rule(
    table: dict[tuple[float, float, float | None], pd.DataFrame], max_fp_rate: float, exclude_fold: int | None
) -> tuple[float, float, float | None]:
    """The rule with the highest mean Dice (patients with bleed) among those giving at most
    ``max_fp_rate`` false-positive patients, both over the folds other than
    ``exclude_fold``; if none does, the rule with the fewest false positives."""

    def stats_of(t: pd.DataFrame) -> tuple[float, float]:
        o = t[t["fold"] != exclude_fold]
        free = o[o["gt"] == 0]
        return (float(free["fp"].mean()) if len(free) else 0.0), float(o["dice"].mean())

    st = {rule: stats_of(t) for rule, t in table.items()}
    ok = [r for r, (fp, _) in st.items() if fp <= max_fp_rate]
    if ok:  # ties: the rule listed first in the grid (the least strict)
        return max(ok, key=lambda r: st[r][1])
    return min(st, key=lambda r: (st[r][0], -st[r][1]))


def _rule_dict(rule: tuple[float, float, float | None]) -> dict[str, Any]:
    """A rule as the contract's fields."""
    return {"min_component_px": int(rule[0]), "min_component_peak": float(rule[1]), "min_component_hu": rule[2]}


def calibrate_components(runs: list[str | Path], max_fp_rate: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """Component rules (minimum size, highest probability, mean HU; the contract's
    ``min_component_*``) that keep bleed-free patients clean, chosen by cross-validation so
    that no patient's own label picks the rule applied to it.

    For each fold k, the rule of the grid (:data:`GRID_MIN_PX` x :data:`GRID_PEAK` x
    :data:`GRID_HU`) with the best mean Dice among those giving at most ``max_fp_rate``
    false-positive patients on the OTHER folds is applied to fold k's components (from
    ``evaluate``'s ``oof_components.csv``). Returns that pooled result (per-patient Dice with
    CI, FP patients), the per-fold rules, the rule chosen on all folds (for a model trained on
    all of them, or the folds' ensemble) and, descriptive only, each rule's pooled figures."""
    run_dirs = find_oof_runs(runs)
    comps, pats = _components(run_dirs)
    folds = sorted(set(pats["fold"].dropna().astype(int)))
    if len(folds) < 2 or pats["fold"].isna().any():
        raise ValueError(
            f"calibration needs the out-of-fold runs of at least two folds of one model, got folds {folds}"
        )
    rules = [(m, p, h) for m in GRID_MIN_PX for p in GRID_PEAK for h in GRID_HU]
    table = {r: _scores_with(comps, pats, r) for r in rules}
    per_fold = {k: _best_rule(table, max_fp_rate, k) for k in folds}
    applied = pd.concat([table[per_fold[k]][table[per_fold[k]]["fold"] == k] for k in folds])
    bleed, free = applied[applied["gt"] > 0], applied[applied["gt"] == 0]
    grid = []
    for r, t in table.items():
        tb, tf = t[t["gt"] > 0], t[t["gt"] == 0]
        grid.append({**_rule_dict(r), "dice_patient": float(tb["dice"].mean()), "fp_patients": int(tf["fp"].sum())})
    none = table[(0, 0.0, None)]
    return {
        "found_rule": f"a bleed is found when the predicted mask has Dice >= {FOUND_DICE} with it",
        "found_by_size": found_by_size(bleed),
        "rule": (
            "keep a predicted 3D component only if it has >= min_component_px network-grid pixels, a highest "
            "probability >= min_component_peak and a mean HU >= min_component_hu; per fold, the grid rule with the "
            f"best Dice among those giving <= {max_fp_rate:.0%} false-positive patients on the other folds"
        ),
        "max_fp_rate": max_fp_rate,
        "per_fold": {int(k): _rule_dict(r) for k, r in per_fold.items()},
        "all_folds": _rule_dict(_best_rule(table, max_fp_rate, None)),
        "dice_patient": float(bleed["dice"].mean()),
        "dice_patient_ci": bootstrap_ci(bleed["dice"].to_numpy(float), seed=seed),
        "fp_patients": int(free["fp"].sum()),
        "n_patients_without_bleed": len(free),
        "n_patients_with_bleed": len(bleed),
        "without_rules": {
            "dice_patient": float(none.loc[none["gt"] > 0, "dice"].mean()),
            "fp_patients": int(none["fp"].sum()),
        },
        "patients": applied.reset_index().to_dict(orient="records"),
        "grid": grid,
    }
