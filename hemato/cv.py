"""Cross-validation results: out-of-fold evaluation through the shipped engine, merged.

    python -m hemato.cv evaluate RUN_DIR [RUN_DIR ...] [--rotations 0 90 180 270]
    python -m hemato.cv report RUN_DIR_OR_SWEEP [...] --out reports/ctich
    python -m hemato.cv calibrate RUN_DIR_OR_SWEEP [...] --out reports/ctich [--max-fp-rate 0.1]
    python -m hemato.cv seeds LABEL=FOLDER LABEL=FOLDER [...] --out DIR

``evaluate`` loads a finished run's checkpoint, rebuilds its test fold from the run's own
``config.yaml`` + ``split.json``, and segments every test patient with
:func:`hemato.engine.segment` and the checkpoint's contract, i.e. exactly what
``hemato.predict`` would do. It writes ``oof_patients.csv`` and ``oof_slices.csv`` in the run
folder (with ``--rotations``: the inputs rotated in plane by those angles, predictions rotated
back, one row per patient and angle), and ``oof_components.csv``: every predicted 3D
component before the contract's component rules, with its size, highest probability, mean HU
and overlap with the truth. ``--contract tta=true --out DIR`` evaluates another contract
without touching the run's own results.

``calibrate`` chooses the contract's component rules (minimum size, probability, HU) from
those tables by leave-one-fold-out: each fold is scored with the rule picked on the others.

``report`` pools the out-of-fold rows of all folds of each model (every patient is tested
exactly once per model) into per-slice and per-patient Dice / IoU / Rvd, detection
sensitivity / specificity per slice and per patient, false-positive patients, with patient-
level bootstrap 95 % CIs, and paired comparisons between models on the same patients
(mean difference with bootstrap CI, Wilcoxon signed-rank test).

``seeds`` compares variants of one network (e.g. bf16 and fp32 training), each trained with
several seeds on one split: per variant the mean and SD over seeds, per pair the difference
paired by seed (t-based CI) and per patient (bootstrap CI, Wilcoxon), so a difference can be
set against the seed-to-seed spread.

False-positive patient (a bleed-free patient given a bleed): a predicted 3D component of at
least ``fp_area_mm2`` (10 mm^2) at an assumed pixel spacing of ``assumed_spacing_mm`` (0.45
mm): the collection's spacing is unknown.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from hemato.engine import (
    Contract,
    candidates,
    component_features,
    confidence,
    label_bleeds,
    parse_overrides,
    scan_counts,
    segment,
)
from hemato.metrics.overlap import overlap_scores
from hemato.rundir import tested_checkpoint, write_atomic

ASSUMED_SPACING_MM = 0.45
ASSUMED_SLICE_MM = 5.0  # the collection's slice spacing (its description)
FP_AREA_MM2 = 10.0
VOXEL_ML = ASSUMED_SPACING_MM**2 * ASSUMED_SLICE_MM / 1000.0  # one 512 px voxel at the assumed spacing
FOUND_DICE = 0.2
SIZE_BINS = (("< 2 ml", 0.0, 2.0), ("2-10 ml", 2.0, 10.0), ("> 10 ml", 10.0, math.inf))  # ml at the assumed spacing


# ------------------------------------------------------------------------------ evaluate
def largest_component_px(mask: np.ndarray) -> int:
    """Voxel count of the largest 26-connected component of a (Z, H, W) mask (0 if empty)."""
    if not mask.any():
        return 0
    labels, _ = label_bleeds(mask)
    return int(np.bincount(labels.ravel())[1:].max())


def _load_records(run_dir: Path, patients: list[str]) -> list[Any]:
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
    records = _load_records(run_dir, test)
    prow, srows, crows = [], [], []
    masks0: list[tuple[Any, np.ndarray]] = []
    for rec in records:
        truth = rec.mask if rec.mask is not None else np.zeros(rec.image.shape, bool)
        for angle in rotations:
            k = (int(angle) // 90) % 4
            img = np.ascontiguousarray(np.rot90(rec.image, k, axes=(1, 2)))
            probs, mask = segment(model.forward, img, con)
            conf = confidence(probs, con, images=img) if k == 0 else None
            mask = np.ascontiguousarray(np.rot90(mask, -k, axes=(1, 2)))
            if k == 0:
                masks0.append((rec, mask))
                crows += [
                    {"patient_id": rec.patient_id, "fold": split.get("fold"), "component": i, **row}
                    for i, row in enumerate(component_rows(probs, img, truth.astype(bool), con), start=1)
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


# ------------------------------------------------------------------------------ summarise
def bootstrap_ci(
    values: np.ndarray, stat=np.mean, n: int = 2000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat`` over the rows of ``values`` (NaN if empty)."""
    v = np.asarray(values, float)
    if len(v) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n, len(v)))
    boots = np.array([stat(v[i]) for i in idx])
    return float(np.nanpercentile(boots, 100 * alpha / 2)), float(np.nanpercentile(boots, 100 * (1 - alpha / 2)))


def fp_threshold_px(assumed_spacing_mm: float = ASSUMED_SPACING_MM, fp_area_mm2: float = FP_AREA_MM2) -> float:
    return fp_area_mm2 / assumed_spacing_mm**2


def fp_rule() -> str:
    """The false-positive-patient rule in words."""
    return (
        f"bleed-free patient with a predicted 3D component >= {FP_AREA_MM2:g} mm^2 at an assumed "
        f"{ASSUMED_SPACING_MM} mm spacing (>= {fp_threshold_px():.0f} native voxels)"
    )


def summarize_oof(patients: pd.DataFrame, slices: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """Pooled out-of-fold metrics of one model at one rotation, with bootstrap 95 % CIs.

    Per-slice means are over slices with bleed; CIs of slice means resample patients.
    """
    bleed = patients[patients["gt"] > 0]
    free = patients[patients["gt"] == 0]
    out: dict[str, Any] = {
        "n_patients": len(patients),
        "n_patients_with_bleed": len(bleed),
        "n_patients_without_bleed": len(free),
    }
    for m in ("dice", "iou", "rvd"):
        v = bleed[m].to_numpy(float)
        out[f"{m}_patient"] = float(np.mean(v)) if len(v) else math.nan
        out[f"{m}_patient_ci"] = bootstrap_ci(v, seed=seed)
    # slice means with patient-cluster bootstrap
    bs = slices[slices["gt"] > 0]
    groups = [g[["dice", "iou", "rvd"]].to_numpy(float) for _, g in bs.groupby("patient_id")]
    for j, m in enumerate(("dice", "iou", "rvd")):
        out[f"{m}_slice"] = float(np.mean(bs[m])) if len(bs) else math.nan
        if groups:
            rng = np.random.default_rng(seed)
            boots = []
            for _ in range(2000):
                pick = rng.integers(0, len(groups), len(groups))
                boots.append(np.concatenate([groups[i][:, j] for i in pick]).mean())
            out[f"{m}_slice_ci"] = (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)))
    # detection (n/a where only per-patient results were kept)
    s_true, s_pred = slices["gt"] > 0, slices["pred"] > 0
    out["slice_sensitivity"] = float((s_true & s_pred).sum() / max(s_true.sum(), 1)) if len(slices) else math.nan
    out["slice_specificity"] = float((~s_true & ~s_pred).sum() / max((~s_true).sum(), 1)) if len(slices) else math.nan
    p_true, p_pred = patients["gt"] > 0, patients["pred"] > 0
    out["patient_sensitivity"] = float((p_true & p_pred).sum() / max(p_true.sum(), 1))
    out["patient_specificity"] = float((~p_true & ~p_pred).sum() / max((~p_true).sum(), 1))
    fp_px = fp_threshold_px()
    fp = free["largest_component_px"] >= fp_px
    out["fp_patients"] = int(fp.sum())
    out["fp_patients_ids"] = sorted(free.loc[fp, "patient_id"].tolist())
    out["fp_patients_any_voxel"] = int((free["pred"] > 0).sum())
    out["fp_rule"] = fp_rule()
    # the real-CT bar (issue 23): bleeds found (patient Dice >= FOUND_DICE), of all and of
    # those >= 2 ml at the assumed spacing; median |relative volume error| on those >= 2 ml
    big = bleed[bleed["gt"] * VOXEL_ML >= 2.0]
    out["found_rule"] = f"a bleed is found when the predicted mask has Dice >= {FOUND_DICE} with it"
    out["bleeds_found"] = int((bleed["dice"] >= FOUND_DICE).sum())
    out["n_bleeds_2ml"] = len(big)
    out["bleeds_found_2ml"] = int((big["dice"] >= FOUND_DICE).sum())
    out["median_abs_rvd_2ml"] = float(big["rvd"].abs().median()) if len(big) else math.nan
    return out


def paired_test(a: pd.DataFrame, b: pd.DataFrame, metric: str = "dice", seed: int = 0) -> dict[str, Any]:
    """Paired comparison of two models' per-patient ``metric`` on the patients with bleed
    both were tested on: mean difference a - b, bootstrap 95 % CI, Wilcoxon signed-rank p."""
    m = a[a["gt"] > 0][["patient_id", metric]].merge(
        b[b["gt"] > 0][["patient_id", metric]], on="patient_id", suffixes=("_a", "_b")
    )
    d = (m[f"{metric}_a"] - m[f"{metric}_b"]).to_numpy(float)
    res: dict[str, Any] = {
        "n": len(d),
        "mean_diff": float(d.mean()) if len(d) else math.nan,
        "ci": bootstrap_ci(d, seed=seed),
    }
    res["wilcoxon_p"] = wilcoxon_p(d)
    return res


def wilcoxon_p(d: np.ndarray) -> float:
    """Wilcoxon signed-rank p of paired differences ``d`` (1.0 when all are 0, NaN if undefined)."""
    try:
        return float(stats.wilcoxon(d).pvalue) if len(d) and np.any(d != 0) else 1.0
    except ValueError:
        return math.nan


def find_oof_runs(paths: list[str | Path]) -> list[Path]:
    """Run folders (with oof_patients.csv) under ``paths``."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such folder")
        found |= {
            f.parent
            for f in ([p / "oof_patients.csv"] if (p / "oof_patients.csv").exists() else p.rglob("oof_patients.csv"))
        }
    return sorted(found)


def model_key(run_dir: Path) -> str:
    """Label of a run's network: model name plus its attention switches when not default."""
    from hemato.report.collect import model_label

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    return model_label(cfg.get("model", {}))[0]


def labelled_runs(paths: list[str | Path]) -> list[tuple[str, Path]]:
    """``(label, run folder)`` of every evaluated run under ``paths``. A path written
    ``LABEL=PATH`` gives its runs that label (to compare variants of one network: another
    precision, seed or initialisation); otherwise a run's label is its network's
    (:func:`model_key`)."""
    out = []
    for p in map(str, paths):
        label = None
        if "=" in p and not Path(p).exists():
            label, p = p.split("=", 1)
            if not label:
                raise ValueError(f"{p}: empty label in LABEL=PATH")
        out += [(label or model_key(r), r) for r in find_oof_runs([p])]
    return out


def _slices_of(run: Path) -> pd.DataFrame:
    """A run's per-slice out-of-fold table; empty (per-slice figures then n/a) for a folder
    that keeps per-patient results only (older committed reports)."""
    f = run / "oof_slices.csv"
    if f.is_file():
        return pd.read_csv(f, dtype={"patient_id": str})
    return pd.DataFrame(columns=["patient_id", "rotation", "gt", "pred", "dice", "iou", "rvd"])


def merge_folds(paths: list[str | Path]) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """``{label: (patients, slices)}`` pooled over folds (labels: :func:`labelled_runs`). A
    patient tested twice under one label (two runs of one fold) is refused: the runs must be
    given separately, or under two labels."""
    by_model: dict[str, list[Path]] = {}
    for label, r in labelled_runs(paths):
        by_model.setdefault(label, []).append(r)
    out = {}
    for label, runs in by_model.items():
        ps = [pd.read_csv(r / "oof_patients.csv", dtype={"patient_id": str}) for r in runs]
        ss = [_slices_of(r) for r in runs]
        p, s = pd.concat(ps, ignore_index=True), pd.concat(ss, ignore_index=True)
        dup = p.duplicated(["patient_id", "rotation"])
        if dup.any():
            raise ValueError(
                f"{label}: patients evaluated by more than one run ({sorted(p.loc[dup, 'patient_id'].unique())[:5]}); give one run per fold"
            )
        out[label] = (p, s)
    return out


def failure_figures(paths: list[str | Path], label: str, out_dir: Path, n: int = 3) -> list[Path]:
    """Overlays (truth green, prediction red) of ``label``'s ``n`` lowest-Dice patients with
    bleed and its false-positive patients, from the runs' ``oof_predictions``; one PNG each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hemato.rundir import load_prediction

    runs = [r for lab, r in labelled_runs(paths) if lab == label]
    p = pd.concat([pd.read_csv(r / "oof_patients.csv", dtype={"patient_id": str}).assign(_run=str(r)) for r in runs])
    p = p[p["rotation"] == 0]
    worst = p[p["gt"] > 0].sort_values("dice").head(n)
    fps = p[(p["gt"] == 0) & (p["largest_component_px"] >= fp_threshold_px())]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for _, row in pd.concat([worst, fps]).iterrows():
        f = Path(row["_run"]) / "oof_predictions" / f"{row['patient_id']}.npz"
        if not f.is_file():
            continue
        d = load_prediction(f)
        err = (d["truth"] | d["pred"]).reshape(len(d["pred"]), -1).sum(1)
        k = int(np.argmax(err))
        fig, ax = plt.subplots(figsize=(3.2, 3.2))
        ax.imshow(d["image"][k], cmap="gray")
        for m, colour in ((d["truth"][k], "lime"), (d["pred"][k], "red")):
            if m.any():
                ax.contour(m, levels=[0.5], colors=colour, linewidths=0.8)
        kind = f"Dice {row['dice']:.2f}" if row["gt"] > 0 else "no bleed, predicted one"
        ax.set_title(f"patient {row['patient_id']}, slice {int(d['slice_index'][k])}: {kind}", fontsize=7)
        ax.axis("off")
        fig.tight_layout()
        path = out_dir / f"{label.replace(' ', '_').replace('/', '_')}_{row['patient_id']}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _fmt_ci(v: float, ci: tuple[float, float] | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f}"


def cv_report(paths: list[str | Path], out_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write ``cv_summary.json``, ``table1_oof.md/csv`` (+ paired tests, rotations, per-type)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged = merge_folds(paths)
    if not merged:
        raise FileNotFoundError(
            f"no evaluated run (oof_patients.csv) under {', '.join(map(str, paths))}; run `python -m hemato.cv evaluate` first"
        )
    summary: dict[str, Any] = {"models": {}, "paired": {}, "rotations": {}}
    rows = []
    for label, (p, s) in merged.items():
        p0, s0 = p[p["rotation"] == 0], s[s["rotation"] == 0]
        folds = sorted(int(f) for f in p0["fold"].dropna().unique())
        sm = summarize_oof(p0, s0, seed)
        sm["folds"] = folds
        summary["models"][label] = sm
        rows.append(
            {
                "model": label,
                "folds": ",".join(map(str, folds)),
                "patients": sm["n_patients"],
                "with bleed": sm["n_patients_with_bleed"],
                "Dice (patient)": _fmt_ci(sm["dice_patient"], sm["dice_patient_ci"]),
                "IoU (patient)": _fmt_ci(sm["iou_patient"], sm["iou_patient_ci"]),
                "Rvd (patient)": _fmt_ci(sm["rvd_patient"], sm["rvd_patient_ci"]),
                "Dice (slice)": _fmt_ci(sm["dice_slice"], sm.get("dice_slice_ci")),
                "IoU (slice)": _fmt_ci(sm["iou_slice"], sm.get("iou_slice_ci")),
                "Rvd (slice)": _fmt_ci(sm["rvd_slice"], sm.get("rvd_slice_ci")),
                "slice sens / spec": f"{_fmt_ci(sm['slice_sensitivity'], None)} / {_fmt_ci(sm['slice_specificity'], None)}",
                "patient sens / spec": f"{sm['patient_sensitivity']:.3f} / {sm['patient_specificity']:.3f}",
                "FP patients": f"{sm['fp_patients']} of {sm['n_patients_without_bleed']}",
                "found (>= 2 ml)": f"{sm['bleeds_found']} of {sm['n_patients_with_bleed']} "
                f"({sm['bleeds_found_2ml']} of {sm['n_bleeds_2ml']})",
                "median abs Rvd (>= 2 ml)": f"{sm['median_abs_rvd_2ml']:.3f}",
            }
        )
        rot = {}
        base = p0[p0["gt"] > 0].set_index("patient_id")["dice"]
        for angle in sorted(p["rotation"].unique()):
            pa = p[(p["rotation"] == angle) & (p["gt"] > 0)].set_index("patient_id")["dice"]
            common = base.index.intersection(pa.index)
            rot[int(angle)] = {
                "dice_patient": float(pa.mean()),
                "diff_vs_0": float((pa[common] - base[common]).mean()) if len(common) else math.nan,
                "n": int(len(pa)),
            }
        if len(rot) > 1:
            summary["rotations"][label] = rot
        if "kinds" in p0 and p0["kinds"].notna().any():
            summary["models"][label]["by_kind"] = {
                str(k): {"n": int(len(g)), "dice_patient": float(g["dice"].mean())}
                for k, g in p0[p0["gt"] > 0].groupby("kinds")
            }
        b0 = p0[p0["gt"] > 0]
        size_rows = {}
        for name, g in by_size(b0):
            size_rows[name] = {
                "n": int(len(g)),
                "dice_patient": float(g["dice"].mean()) if len(g) else math.nan,
                "dice_patient_ci": bootstrap_ci(g["dice"].to_numpy(float), seed=seed),
            }
        summary["models"][label]["by_size"] = size_rows
        if "unsure" in p0 and p0["unsure"].notna().any():
            b = p0[p0["gt"] > 0]
            fl = b["unsure"].astype(str).str.lower() == "true"
            summary["models"][label]["confidence"] = {
                "rule": "unsure: volume at p>0.3 and p>0.7 differ by > 0.5 x the volume at the threshold",
                "flagged": {
                    "n": int(fl.sum()),
                    "dice": float(b.loc[fl, "dice"].mean()) if fl.any() else math.nan,
                    "abs_rvd": float(b.loc[fl, "rvd"].mean()) if fl.any() else math.nan,
                },
                "unflagged": {
                    "n": int((~fl).sum()),
                    "dice": float(b.loc[~fl, "dice"].mean()) if (~fl).any() else math.nan,
                    "abs_rvd": float(b.loc[~fl, "rvd"].mean()) if (~fl).any() else math.nan,
                },
                "bleed_free_flagged": int((p0.loc[p0["gt"] == 0, "unsure"].astype(str).str.lower() == "true").sum()),
            }
    labels = list(merged)
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            pa, pb = merged[a][0], merged[b][0]
            summary["paired"][f"{a} - {b}"] = paired_test(pa[pa["rotation"] == 0], pb[pb["rotation"] == 0], seed=seed)
    table = pd.DataFrame(rows)
    write_atomic(out / "table1_oof.csv", table.to_csv(index=False))
    md = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    md += ["| " + " | ".join(str(v) for v in r) + " |" for r in table.itertuples(index=False)]
    if summary["paired"]:
        md += [
            "",
            "Paired per-patient Dice (patients with bleed tested by both):",
            "",
            "| comparison | n | mean difference [95 % CI] | Wilcoxon p |",
            "|---|---|---|---|",
        ]
        md += [
            f"| {k} | {v['n']} | {_fmt_ci(v['mean_diff'], v['ci'])} | {v['wilcoxon_p']:.3g} |"
            for k, v in summary["paired"].items()
        ]
    if summary["rotations"]:
        md += [
            "",
            "In-plane rotation of the inputs (per-patient Dice, patients with bleed):",
            "",
            "| model | " + " | ".join(f"{a} deg" for a in (0, 90, 180, 270)) + " |",
            "|---|---|---|---|---|",
        ]
        for label, rot in summary["rotations"].items():
            md.append(
                f"| {label} | "
                + " | ".join(
                    f"{rot[a]['dice_patient']:.3f} ({rot[a]['diff_vs_0']:+.3f})" if a in rot else ""
                    for a in (0, 90, 180, 270)
                )
                + " |"
            )
    figs = []
    for label in merged:
        figs += failure_figures(paths, label, out / "figures")
    summary["figures"] = [str(f.relative_to(out)) for f in figs]
    md += [
        "",
        f"Per-patient Dice by true bleed size (volume at an assumed {ASSUMED_SPACING_MM} mm pixel and {ASSUMED_SLICE_MM:g} mm slice spacing):",
        "",
        "| model | < 2 ml | 2-10 ml | > 10 ml |",
        "|---|---|---|---|",
    ]
    md += [
        f"| {k} | "
        + " | ".join(
            f"{r['dice_patient']:.3f} [{r['dice_patient_ci'][0]:.3f}, {r['dice_patient_ci'][1]:.3f}] (n={r['n']})"
            if r["n"]
            else "-"
            for r in v["by_size"].values()
        )
        + " |"
        for k, v in summary["models"].items()
    ]
    conf_rows = [(k, v["confidence"]) for k, v in summary["models"].items() if "confidence" in v]
    if conf_rows:
        md += [
            "",
            "Confidence flag (patients with bleed): does 'unsure' pick out the larger errors?",
            "",
            "| model | flagged n | flagged Dice | flagged Rvd | unflagged n | unflagged Dice | unflagged Rvd | bleed-free flagged |",
            "|---|---|---|---|---|---|---|---|",
        ]
        md += [
            f"| {k} | {c['flagged']['n']} | {c['flagged']['dice']:.3f} | {c['flagged']['abs_rvd']:.3f} | {c['unflagged']['n']} | {c['unflagged']['dice']:.3f} | "
            f"{c['unflagged']['abs_rvd']:.3f} | {c['bleed_free_flagged']} |"
            for k, c in conf_rows
        ]
    write_atomic(out / "table1_oof.md", "\n".join(md) + "\n")
    write_atomic(out / "cv_summary.json", json.dumps(summary, indent=2, default=float))
    return summary


# ------------------------------------------------------------------------------ seeds
def _seed_runs(paths: list[str | Path]) -> dict[str, dict[int, pd.DataFrame]]:
    """``{label: {training seed: per-patient rows at rotation 0}}`` of labelled runs that all
    test one split. Refused (ValueError): a label with a seed twice or fewer than two seeds,
    runs that test different patients."""
    by: dict[str, dict[int, pd.DataFrame]] = {}
    tested: dict[frozenset[str], Path] = {}
    for label, r in labelled_runs(paths):
        cfg = yaml.safe_load((r / "config.yaml").read_text()) or {}
        if "seed" not in cfg:
            raise ValueError(f"{r}/config.yaml: no training seed")
        s = int(cfg["seed"])
        p = pd.read_csv(r / "oof_patients.csv", dtype={"patient_id": str})
        p = p[p["rotation"] == 0]
        if s in by.setdefault(label, {}):
            raise ValueError(f"{r}: {label} has two runs with seed {s}")
        by[label][s] = p
        tested.setdefault(frozenset(p["patient_id"]), r)
    if len(tested) > 1:
        a, b = list(tested.values())[:2]
        raise ValueError(f"{a} and {b} test different patients: seeds must share one split (data.split_seed)")
    few = [k for k, v in by.items() if len(v) < 2]
    if few:
        raise ValueError(f"{few[0]}: one seed only; the seed-to-seed spread needs two or more")
    return by


def _mean_ci_t(d: np.ndarray) -> tuple[float, tuple[float, float], float]:
    """Mean, t-based 95 % CI and one-sample t-test p (H0: mean 0) of ``d`` (n >= 2)."""
    m, n = float(d.mean()), len(d)
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n))
    p = float(stats.ttest_1samp(d, 0.0).pvalue) if np.any(d != d[0]) else (1.0 if m == 0 else 0.0)
    return m, (m - half, m + half), p


def seeds_report(paths: list[str | Path], out_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Variants of one network (``LABEL=FOLDER``, each folder holding one evaluated run per
    training seed, all on one split): is a difference between variants larger than the seed-
    to-seed spread? Writes ``seeds.md`` and ``seeds.json``.

    Per variant and seed: per-patient Dice (mean over patients with bleed), mean |relative
    volume difference| and false-positive patients; their mean and SD over seeds. Per pair of
    variants: the per-seed difference of mean Dice over the seeds both have (same seed = same
    initial weights and data order), with a t-based 95 % CI and paired t-test, and per patient
    the seed-averaged Dice difference (bootstrap 95 % CI, Wilcoxon signed-rank p).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by = _seed_runs(paths)
    # per label and seed: per-patient Dice of the patients with bleed (index patient_id)
    bleed = {k: {s: p[p["gt"] > 0].set_index("patient_id") for s, p in v.items()} for k, v in by.items()}
    fp_px = fp_threshold_px()
    summary: dict[str, Any] = {"variants": {}, "paired": {}}
    md = [
        "| variant | seeds | Dice (patient) per seed | mean | SD over seeds | mean abs Rvd | FP patients per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, runs in by.items():
        seeds = sorted(runs)
        dice = [float(bleed[label][s]["dice"].mean()) for s in seeds]
        rvd = [float(bleed[label][s]["rvd"].mean()) for s in seeds]
        free = [runs[s][runs[s]["gt"] == 0] for s in seeds]
        fp = [int((f["largest_component_px"] >= fp_px).sum()) for f in free]
        v = {
            "seeds": seeds,
            "dice_patient": dice,
            "dice_mean": float(np.mean(dice)),
            "dice_sd": float(np.std(dice, ddof=1)),
            "abs_rvd": rvd,
            "abs_rvd_mean": float(np.mean(rvd)),
            "fp_patients": fp,
            "n_patients_with_bleed": len(bleed[label][seeds[0]]),
            "n_patients_without_bleed": len(free[0]),
        }
        summary["variants"][label] = v
        fp_cells = ", ".join(f"{x} of {len(free[0])}" for x in fp)
        md.append(
            f"| {label} | {', '.join(map(str, seeds))} | {', '.join(f'{x:.3f}' for x in dice)} | {v['dice_mean']:.3f} | "
            f"{v['dice_sd']:.3f} | {v['abs_rvd_mean']:.3f} | {fp_cells} |"
        )
    labels = list(by)
    if len(labels) > 1:
        md += [
            "",
            "Differences (first - second): per seed, paired by seed; per patient, Dice averaged over those seeds:",
            "",
            "| comparison | seeds | per-seed differences | mean [95 % CI, t] | paired t p | higher in | per-patient mean [95 % CI] | Wilcoxon p |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            common = sorted(set(by[a]) & set(by[b]))
            if len(common) < 2:
                summary["paired"][f"{a} - {b}"] = {"n_seeds": len(common), "note": "fewer than two common seeds"}
                continue
            d = np.array([bleed[a][s]["dice"].mean() - bleed[b][s]["dice"].mean() for s in common])
            m, ci, p = _mean_ci_t(d)
            pa = pd.concat([bleed[a][s]["dice"] for s in common], axis=1).mean(axis=1)
            pb = pd.concat([bleed[b][s]["dice"] for s in common], axis=1).mean(axis=1)
            dp = (pa - pb.reindex(pa.index)).to_numpy(float)
            wp = wilcoxon_p(dp)
            r = {
                "n_seeds": len(common),
                "seeds": common,
                "per_seed_diff": d.tolist(),
                "mean_diff": m,
                "ci_t": ci,
                "paired_t_p": p,
                "a_higher": int((d > 0).sum()),
                "n_patients": len(dp),
                "per_patient_mean_diff": float(dp.mean()),
                "per_patient_ci": bootstrap_ci(dp, seed=seed),
                "wilcoxon_p": wp,
            }
            summary["paired"][f"{a} - {b}"] = r
            md.append(
                f"| {a} - {b} | {', '.join(map(str, common))} | {', '.join(f'{x:+.3f}' for x in d)} | "
                f"{_fmt_ci(m, ci)} | {p:.3g} | {a} {r['a_higher']} of {len(common)} | "
                f"{_fmt_ci(r['per_patient_mean_diff'], r['per_patient_ci'])} (n={len(dp)}) | {wp:.3g} |"
            )
    md += [
        "",
        f"False-positive patient: {fp_rule()}.",
    ]
    write_atomic(out / "seeds.md", "\n".join(md) + "\n")
    write_atomic(out / "seeds.json", json.dumps(summary, indent=2, default=float))
    return summary


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hemato.cv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    ev = sub.add_parser("evaluate", help="out-of-fold evaluation of finished runs through the engine")
    ev.add_argument("runs", nargs="+")
    ev.add_argument(
        "--rotations", nargs="+", type=int, default=[0], help="in-plane rotations (degrees, multiples of 90)"
    )
    ev.add_argument("--min-component-px", type=int, help="override the checkpoint contract's min_component_px")
    ev.add_argument(
        "--contract",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="override contract fields (YAML values), e.g. tta=true min_component_peak=0.9",
    )
    ev.add_argument("--out", help="write the results to OUT/<run name>/ instead of into the run folder")
    rp = sub.add_parser("report", help="pool folds per model: metrics with CIs, paired tests")
    rp.add_argument("runs", nargs="+", help="run folders (or folders of runs); LABEL=PATH labels a variant")
    rp.add_argument("--out", required=True)
    sp = sub.add_parser(
        "seeds", help="variants of one network over several training seeds on one split: difference vs seed spread"
    )
    sp.add_argument("runs", nargs="+", help="LABEL=FOLDER, each folder holding one evaluated run per seed")
    sp.add_argument("--out", required=True)
    cb = sub.add_parser(
        "calibrate",
        help="cross-validated component rules (size, probability, HU) that keep bleed-free patients clean (one model's folds)",
    )
    cb.add_argument("runs", nargs="+")
    cb.add_argument("--max-fp-rate", type=float, default=0.1)
    cb.add_argument("--out", required=True, help="folder for calibration.json")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "evaluate":
            over: dict[str, Any] = {}
            if a.min_component_px is not None:
                over["min_component_px"] = a.min_component_px
            over.update(parse_overrides(a.contract))
            for r in a.runs:
                if any(x % 90 for x in a.rotations):
                    raise ValueError("--rotations must be multiples of 90")
                p, _ = evaluate_run(r, tuple(a.rotations), over or None, out_dir=a.out)
                b = p[(p["rotation"] == 0) & (p["gt"] > 0)]
                print(
                    f"{r}: {len(p[p['rotation'] == 0])} patients, per-patient Dice (bleed) {b['dice'].mean():.3f} -> {Path(a.out) / Path(r).name if a.out else r}/oof_patients.csv"
                )
        elif a.cmd == "calibrate":
            c = calibrate_components(a.runs, a.max_fp_rate)
            Path(a.out).mkdir(parents=True, exist_ok=True)
            write_atomic(Path(a.out) / "calibration.json", json.dumps(c, indent=2, default=float))
            w = c["without_rules"]
            print(
                f"cross-validated component rules: per-patient Dice (bleed) {_fmt_ci(c['dice_patient'], c['dice_patient_ci'])}, "
                f"FP patients {c['fp_patients']} of {c['n_patients_without_bleed']} (without rules: {w['dice_patient']:.3f}, "
                f"{w['fp_patients']}); rule on all folds: {c['all_folds']} -> {a.out}/calibration.json"
            )
        elif a.cmd == "seeds":
            s = seeds_report(a.runs, a.out)
            for label, v in s["variants"].items():
                print(
                    f"{label}: Dice (patient) {v['dice_mean']:.3f} +- {v['dice_sd']:.3f} (SD over seeds {', '.join(map(str, v['seeds']))})"
                )
            for k, r in s["paired"].items():
                if "mean_diff" in r:
                    print(
                        f"{k}: {_fmt_ci(r['mean_diff'], r['ci_t'])} over {r['n_seeds']} seeds, paired t p {r['paired_t_p']:.3g} -> {a.out}/seeds.md"
                    )
        else:
            s = cv_report(a.runs, a.out)
            for label, m in s["models"].items():
                print(
                    f"{label}: Dice (patient) {_fmt_ci(m['dice_patient'], m['dice_patient_ci'])}, FP patients {m['fp_patients']} of {m['n_patients_without_bleed']} -> {a.out}/table1_oof.md"
                )
    except (FileNotFoundError, ValueError) as e:
        print(f"hemato.cv: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
