"""The paper's Figures 2-6 (and a Bland-Altman plot) from collected runs, as PNG files.

* Fig. 2: contour overlays, all models, on the most instructive test slices;
* Fig. 3: per-patient measured vs true volume curves;
* Fig. 4: per-patient volume error curves;
* Fig. 5 / 6: overlays for the irregular / near-skull subgroups, U-Net vs Ours.
Truth is drawn in green (the paper's convention), each model in its own colour.
"Most instructive" slices: for each test patient the slice where the models disagree most
with the truth (lowest mean slice Dice among slices with a sizeable bleed), one per patient.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hemato.metrics.agreement import bland_altman  # noqa: E402
from hemato.report.collect import Run  # noqa: E402
from hemato.rundir import load_prediction  # noqa: E402

COLORS = {"FCN8s": "#9b59ff", "SegNet": "#ff9f1a", "U-Net": "#2f7bff", "Ours": "#ff2d2d"}
TRUTH = "#00e000"


def color(label: str) -> str:
    return COLORS.get(label, "#ffd400")


def choose_slices(runs: dict[str, Run], ids: list[str] | None = None, n: int = 4) -> list[tuple[str, int]]:
    """(patient, slice_index) pairs: per patient its hardest sizeable slice, hardest patients first."""
    frames = []
    for lab, run in runs.items():
        s = run.slices[["patient_id", "slice_index", "gt", "dice"]].copy()
        s["model"] = lab
        frames.append(s)
    s = pd.concat(frames)
    if ids is not None:
        s = s[s["patient_id"].isin(ids)]
    s = s[s["gt"] > 0]
    if s.empty:
        return []
    big = s.groupby("patient_id")["gt"].transform("max")
    s = s[s["gt"] >= 0.3 * big]
    mean_dice = s.groupby(["patient_id", "slice_index"])["dice"].mean().reset_index()
    worst = mean_dice.sort_values("dice").groupby("patient_id").head(1)
    return [(r.patient_id, int(r.slice_index)) for r in worst.head(n).itertuples()]


def _crop_box(masks: list[np.ndarray], shape: tuple[int, int], margin: float = 0.6) -> tuple[slice, slice]:
    union = np.zeros(shape, bool)
    for m in masks:
        union |= m
    if not union.any():
        return slice(None), slice(None)
    r, c = np.nonzero(union)
    h = max(r.max() - r.min(), c.max() - c.min(), 24)
    pad = int(h * margin) + 8
    cr, cc = (r.max() + r.min()) // 2, (c.max() + c.min()) // 2
    half = h // 2 + pad
    return slice(max(cr - half, 0), min(cr + half, shape[0])), slice(max(cc - half, 0), min(cc + half, shape[1]))


def overlay_figure(runs: dict[str, Run], picks: list[tuple[str, int]], title: str, path: Path) -> Path | None:
    """Grid: one row per picked slice; full slice + zoomed crop, truth green, models coloured."""
    if not picks:
        return None
    preds = {lab: {} for lab in runs}
    fig, axes = plt.subplots(len(picks), 2, figsize=(8, 4 * len(picks)), squeeze=False)
    for row, (pid, sidx) in enumerate(picks):
        base = None
        for lab, run in runs.items():
            f = run.predictions / f"{pid}.npz" if run.predictions else None
            if f is None or not f.exists():
                continue
            preds[lab][pid] = load_prediction(f)
            base = base or preds[lab][pid]
        if base is None:
            continue
        z = int(np.flatnonzero(base["slice_index"] == sidx)[0])
        img, truth = base["image"][z], base["truth"][z]
        masks = [truth] + [preds[lab][pid]["pred"][z] for lab in runs if pid in preds[lab]]
        box = _crop_box(masks, img.shape)
        for col, (sl_r, sl_c) in enumerate([(slice(None), slice(None)), box]):
            ax = axes[row, col]
            ax.imshow(img[sl_r, sl_c], cmap="gray", vmin=0, vmax=255)
            handles = []
            for lab, m, c in [("truth", truth, TRUTH)] + [
                (lab, preds[lab][pid]["pred"][z], color(lab)) for lab in runs if pid in preds[lab]
            ]:
                if m[sl_r, sl_c].any():
                    ax.contour(
                        m[sl_r, sl_c].astype(float), levels=[0.5], colors=[c], linewidths=1.6 if lab == "truth" else 1.1
                    )
                handles.append(plt.Line2D([], [], color=c, label=lab))
            ax.set_axis_off()
            if col == 0:
                ax.set_title(f"{pid}, slice {sidx}", fontsize=9)
                ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.6)
            else:
                ax.set_title("zoom", fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _patient_curves(runs: dict[str, Run], path: Path, column: str, ylabel: str, title: str, truth: bool) -> Path:
    """One curve per model of a per-patient ``column``, patients sorted by true volume;
    ``truth`` adds the true-volume curve, otherwise a zero line."""
    ref = next(iter(runs.values())).patients.sort_values("true_volume_ml")
    order = list(ref["patient_id"])
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(order))
    if truth:
        ax.plot(x, ref["true_volume_ml"], "-o", color="black", label="true (planimetry of truth masks)", ms=4)
    else:
        ax.axhline(0, color="black", lw=0.8)
    for lab, run in runs.items():
        p = run.patients.set_index("patient_id").loc[order]
        ax.plot(x, p[column], "-s" if truth else "-o", color=color(lab), label=lab, ms=3, alpha=0.85 if truth else 1.0)
    ax.set_xticks(x, order, rotation=90, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def volume_curves(runs: dict[str, Run], path: Path) -> Path:
    """Fig. 3: per-patient measured and true volume, patients sorted by true volume."""
    return _patient_curves(
        runs,
        path,
        "pred_volume_ml",
        "volume (ml)",
        "Fig. 3. Measured vs true bleeding volume per test patient",
        truth=True,
    )


def error_curves(runs: dict[str, Run], path: Path) -> Path:
    """Fig. 4: per-patient volume error (measured - true, ml)."""
    return _patient_curves(
        runs, path, "volume_error_ml", "measured - true (ml)", "Fig. 4. Volume error per test patient", truth=False
    )


def bland_altman_plot(runs: dict[str, Run], path: Path) -> Path:
    """Bland-Altman: difference vs mean of measured and true volume, bias and 95 % limits."""
    items = list(runs.items())
    extra = None
    first = items[0][1].patients
    if "true_abc2_ml" in first:
        p = first[first["gt"] > 0]
        extra = ("ABC/2 (truth masks)", p["true_abc2_ml"].to_numpy(float), p["true_volume_ml"].to_numpy(float))
    n = len(items) + (extra is not None)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False, sharey=True)
    panels = [
        (lab, r.patients["pred_volume_ml"].to_numpy(float), r.patients["true_volume_ml"].to_numpy(float))
        for lab, r in items
    ]
    if extra:
        panels.append(extra)
    for ax, (lab, m, t) in zip(axes[0], panels):
        ba = bland_altman(m, t)
        ax.scatter((m + t) / 2, m - t, s=12, color=color(lab) if lab in COLORS else "#555555")
        for v, ls in ((ba["bias"], "-"), (ba["loa_low"], "--"), (ba["loa_high"], "--")):
            if np.isfinite(v):
                ax.axhline(v, color="black", ls=ls, lw=0.8)
        ax.set_title(f"{lab}\nbias {ba['bias']:.2f}, LoA [{ba['loa_low']:.1f}, {ba['loa_high']:.1f}]", fontsize=8)
        ax.set_xlabel("mean of measured and true (ml)", fontsize=8)
    axes[0, 0].set_ylabel("measured - true (ml)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def abc2_bias_plot(runs: dict[str, Run], path: Path) -> Path | None:
    """ABC/2 relative error of the truth masks vs the hematoma's solidity (irregularity)."""
    run = next(iter(runs.values()), None)
    if run is None or "true_abc2_ml" not in run.patients:
        return None
    p = run.patients[run.patients["gt"] > 0]
    rel = (p["true_abc2_ml"] - p["true_volume_ml"]) / p["true_volume_ml"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.scatter(p["solidity"], 100 * rel, s=16, color="#444444")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("solidity of the hematoma (1 = convex)")
    ax.set_ylabel("ABC/2 error vs exact volume (%)")
    ax.set_title("ABC/2 bias grows with irregularity", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
