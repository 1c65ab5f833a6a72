"""The cross-validation report (``python -m hemato.cv report``): every fold of each model pooled,
with patient-level bootstrap CIs and paired comparisons between models."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import yaml

from hemato.evaluation.oof import ASSUMED_SLICE_MM, ASSUMED_SPACING_MM, FOUND_DICE, FP_AREA_MM2, VOXEL_ML, by_size
from hemato.evaluation.stats import bootstrap_ci, fmt_ci, paired_test
from hemato.rundir import write_atomic

# per-patient columns of oof_patients.csv compared pairwise (paired_test), and their names
PAIRED_METRICS = {"dice": "Dice", "iou": "IoU", "rvd": "abs Rvd", "rvd_signed": "relative volume error (signed Rvd)"}


class OofTable(NamedTuple):
    """A table of numbers from ``cv_summary.json`` (for a W&B report run)."""

    key: str
    data: pd.DataFrame


def oof_tables(summary: dict[str, Any]) -> list[OofTable]:
    """``cv_report``'s summary as tables of numbers: per model (Table 1/2 out of fold), paired
    per metric (and Dice per rotation), per bleed size, per rotation."""
    models = pd.DataFrame(
        [
            {
                "model": k,
                "folds": ",".join(map(str, m["folds"])),
                "patients": m["n_patients"],
                "with_bleed": m["n_patients_with_bleed"],
                **{f"{x}_patient": m[f"{x}_patient"] for x in ("dice", "iou", "rvd")},
                "dice_patient_lo": m["dice_patient_ci"][0],
                "dice_patient_hi": m["dice_patient_ci"][1],
                "fp_patients": m["fp_patients"],
                "bleeds_found": m["bleeds_found"],
                "bleeds_found_2ml": m["bleeds_found_2ml"],
                "median_abs_rvd_2ml": m["median_abs_rvd_2ml"],
            }
            for k, m in summary["models"].items()
        ]
    )
    paired = pd.DataFrame(
        [
            {
                "comparison": c,
                "metric": name,
                "rotation": int(angle),
                "n": v["n"],
                "mean_diff": v["mean_diff"],
                "ci_lo": v["ci"][0],
                "ci_hi": v["ci"][1],
                "wilcoxon_p": v["wilcoxon_p"],
            }  # fmt: skip
            for c, name, angle, v in [
                *((c, m, 0, v) for c, per in summary.get("paired_metrics", {}).items() for m, v in per.items()),
                *((c, "dice", g, v) for c, per in summary.get("paired_rotations", {}).items() for g, v in per.items()),
            ]
        ]
    )
    sizes = pd.DataFrame(
        [
            {"model": k, "size": s, "n": r["n"], "dice_patient": r["dice_patient"]}
            for k, m in summary["models"].items()
            for s, r in m["by_size"].items()
        ]
    )
    rot = pd.DataFrame(
        [
            {"model": k, "rotation": a, "dice_patient": r["dice_patient"], "diff_vs_0": r["diff_vs_0"]}
            for k, v in summary["rotations"].items()
            for a, r in v.items()
        ]
    )
    tables = [OofTable("oof_models", models), OofTable("oof_by_size", sizes)]
    return tables + [OofTable(k, t) for k, t in (("oof_paired", paired), ("oof_rotations", rot)) if len(t)]


def paired_md(caption: str, by: str, tests: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Markdown lines of paired tests ``{comparison: {row name: paired_test result}}``, one row
    each, under ``caption`` (lines split at newlines); ``by`` heads the row-name column."""
    md = ["", *caption.split("\n"), "", f"| comparison | {by} | n | mean difference [95 % CI] | Wilcoxon p |"]
    md.append("|---|---|---|---|---|")
    return md + [
        f"| {k} | {name} | {v['n']} | {fmt_ci(v['mean_diff'], v['ci'])} | {v['wilcoxon_p']:.3g} |"
        for k, per in tests.items()
        for name, v in per.items()
    ]


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


def cv_report(paths: list[str | Path], out_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write ``cv_summary.json``, ``table1_oof.md/csv`` (+ paired tests, rotations, per-type)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged = merge_folds(paths)
    if not merged:
        raise FileNotFoundError(
            f"no evaluated run (oof_patients.csv) under {', '.join(map(str, paths))}; run `python -m hemato.cv evaluate` first"
        )
    summary: dict[str, Any] = {
        "models": {},
        "paired": {},
        "paired_metrics": {},
        "paired_rotations": {},
        "rotations": {},
    }
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
                "Dice (patient)": fmt_ci(sm["dice_patient"], sm["dice_patient_ci"]),
                "IoU (patient)": fmt_ci(sm["iou_patient"], sm["iou_patient_ci"]),
                "Rvd (patient)": fmt_ci(sm["rvd_patient"], sm["rvd_patient_ci"]),
                "Dice (slice)": fmt_ci(sm["dice_slice"], sm.get("dice_slice_ci")),
                "IoU (slice)": fmt_ci(sm["iou_slice"], sm.get("iou_slice_ci")),
                "Rvd (slice)": fmt_ci(sm["rvd_slice"], sm.get("rvd_slice_ci")),
                "slice sens / spec": f"{fmt_ci(sm['slice_sensitivity'], None)} / {fmt_ci(sm['slice_specificity'], None)}",
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
            pa0, pb0 = pa[pa["rotation"] == 0], pb[pb["rotation"] == 0]
            per = {m: paired_test(pa0, pb0, metric=m, seed=seed) for m in PAIRED_METRICS if m in pa0 and m in pb0}
            summary["paired"][f"{a} - {b}"] = per["dice"]  # the headline test, Dice
            summary["paired_metrics"][f"{a} - {b}"] = per
            angles = sorted(set(pa["rotation"]) & set(pb["rotation"]) - {0})
            if angles:  # the Dice comparison again with the inputs rotated: does it hold at each angle?
                summary["paired_rotations"][f"{a} - {b}"] = {
                    str(g): paired_test(pa[pa["rotation"] == g], pb[pb["rotation"] == g], seed=seed) for g in angles
                }
    table = pd.DataFrame(rows)
    write_atomic(out / "table1_oof.csv", table.to_csv(index=False))
    md = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    md += ["| " + " | ".join(str(v) for v in r) + " |" for r in table.itertuples(index=False)]
    if len(labels) > 1:
        md += paired_md(
            "Paired per patient, each metric, a - b over the patients with bleed tested by both (Dice, IoU:\n"
            "higher is better; abs Rvd: lower is better; the signed relative volume error: above 0 calls more):",
            "metric",
            {k: {PAIRED_METRICS[m]: v for m, v in per.items()} for k, per in summary["paired_metrics"].items()},
        )
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
    if summary["paired_rotations"]:
        md += paired_md(
            "Paired per-patient Dice, a - b, with both models' inputs rotated alike:",
            "rotation",
            {k: {f"{g} deg": v for g, v in per.items()} for k, per in summary["paired_rotations"].items()},
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
