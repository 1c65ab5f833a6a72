"""The paper's Tables 1-7 (and an agreement table) from collected runs, with 95 % CIs.

Layouts follow the paper: Table 1 Rvd/Dice/IoU of FCN8s, SegNet, U-Net, Ours; Table 2 volume
RMSE/MAE (ml); Tables 3/4 and 5/6 the same for the irregular and near-skull subgroups (U-Net
vs Ours); Table 7 the ablation U-Net, +SA, +SA+CA, +SA+CA+SPA. Segmentation cells are means
over test slices with bleed (as the paper scored its 660 test slices), with the per-patient
3D values in companion columns; every CI resamples patients (2,000 bootstrap draws). The
paper's own figures sit in ``paper_*`` columns, labelled as private-data numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hemato.metrics.agreement import (
    bland_altman,
    bootstrap_ci,
    cluster_bootstrap_ci,
    icc_2_1,
    paired_wilcoxon,
    pearson_r,
)
from hemato.metrics.volume import mae, rmse
from hemato.report import paper
from hemato.report.collect import Run


def model_order() -> list[str]:
    """Labels of the paper's four networks in table order (their registrations)."""
    from hemato.models.registry import networks

    return [i.label for i in networks(paper=True)]


ABLATION_ORDER = ["U-Net (ours, all off)", "U-Net+SA", "U-Net+SA+CA", "Ours"]


@dataclass
class Table:
    """One report table: numbers (CSV), formatted cells (Markdown/HTML), caption, notes."""

    key: str
    caption: str
    data: pd.DataFrame
    display: pd.DataFrame
    notes: list[str]

    def markdown(self) -> str:
        lines = [
            f"**{self.caption}**",
            "",
            "| " + " | ".join(self.display.columns) + " |",
            "|" + "---|" * len(self.display.columns),
        ]
        for _, row in self.display.iterrows():
            lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
        lines += [""] + [f"_{n}_" for n in self.notes]
        return "\n".join(lines) + "\n"


def fmt(v: float, lo: float | None = None, hi: float | None = None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    s = f"{v:.{digits}f}"
    if lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
        s += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return s


def subgroup_ids(run: Run, tag: str) -> tuple[list[str], str]:
    """Test patients in subgroup ``tag`` (irregular / near_skull): the dataset's own tags when
    it has them (the phantom's generator), else the tags computed from the truth masks."""
    p = run.patients
    if tag in p and p[tag].notna().any():
        mask, source = p[tag].astype(str).str.lower().isin(["true", "1"]), "dataset tags"
    else:
        mask, source = p[f"{tag}_auto"].astype(str).str.lower().isin(["true", "1"]), "computed from the masks"
    has_bleed = p["gt"] > 0
    return sorted(p.loc[mask & has_bleed, "patient_id"]), source


def seg_cells(run: Run, ids: Sequence[str] | None = None, seed: int = 0) -> dict[str, float]:
    """Rvd/Dice/IoU: slice means (CI over patients) and per-patient means (CI)."""
    s, p = run.slices, run.patients
    if ids is not None:
        s, p = s[s["patient_id"].isin(ids)], p[p["patient_id"].isin(ids)]
    out: dict[str, float] = {"n_patients": float((p["gt"] > 0).sum()), "n_slices": float((s["gt"] > 0).sum())}
    for m in ("rvd", "dice", "iou"):
        vals = s[m].dropna()
        out[m] = float(vals.mean()) if len(vals) else math.nan
        groups = [g[m].to_numpy() for _, g in s.groupby("patient_id")]
        out[f"{m}_lo"], out[f"{m}_hi"] = cluster_bootstrap_ci(groups, seed=seed)
        pv = p[m].dropna().to_numpy()
        out[f"{m}_patient"] = float(pv.mean()) if pv.size else math.nan
        out[f"{m}_patient_lo"], out[f"{m}_patient_hi"] = bootstrap_ci(pv, seed=seed)
    return out


def vol_cells(
    run: Run, ids: Sequence[str] | None = None, reference: str = "true_volume_ml", seed: int = 0
) -> dict[str, float]:
    """Volume RMSE/MAE (ml) against ``reference`` with paired bootstrap CIs over patients."""
    p = run.patients
    if ids is not None:
        p = p[p["patient_id"].isin(ids)]
    p = p[p[reference].notna()] if reference in p else p.iloc[:0]
    pred, true = p["pred_volume_ml"].to_numpy(float), p[reference].to_numpy(float) if len(p) else np.zeros(0)
    out = {"n_patients": float(len(p)), "rmse": rmse(pred, true), "mae": mae(pred, true)}
    out["rmse_lo"], out["rmse_hi"] = bootstrap_ci(
        (pred, true), lambda a, b: float(np.sqrt(np.mean((a - b) ** 2))), seed=seed
    )
    out["mae_lo"], out["mae_hi"] = bootstrap_ci((pred, true), lambda a, b: float(np.mean(np.abs(a - b))), seed=seed)
    return out


def pick_runs(
    runs: list[Run], labels: Sequence[str], fallback: dict[str, str] | None = None
) -> tuple[dict[str, Run], list[str]]:
    """label -> run, and notes on what was missing. Several runs with one label are refused
    with the list (a table row is one run: none is dropped silently)."""
    by: dict[str, Run] = {}
    notes = []
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.label, []).append(r)
    dup = {k: v for k, v in groups.items() if len(v) > 1}
    if dup:
        listing = "; ".join(
            f"{k}: {', '.join(str(r.path) for r in sorted(v, key=lambda r: r.path.as_posix()))}" for k, v in dup.items()
        )
        raise ValueError(
            f"several runs of one model ({listing}); give one run per model (or build one report per set of runs)"
        )
    for r in runs:
        by[r.label] = r
    out = {}
    for lab in labels:
        if lab in by:
            out[lab] = by[lab]
        elif fallback and fallback.get(lab) in by:
            out[lab] = by[fallback[lab]]
            notes.append(f"row '{lab}' uses the run labelled '{fallback[lab]}' (no '{lab}' run given)")
        else:
            notes.append(f"no run for '{lab}': row left out")
    return out, notes


def _seg_table(
    key: str,
    caption: str,
    runs: dict[str, Run],
    paper_vals: dict[str, tuple],
    ids_fn=None,
    notes=None,
    row_name="model",
) -> Table:
    rows, disp = [], []
    for lab, run in runs.items():
        ids = ids_fn(run) if ids_fn else None
        c = seg_cells(run, ids)
        pv = paper_vals.get(lab if lab != "U-Net (ours, all off)" else "U-Net", (math.nan,) * 3)
        rows.append(
            {row_name: lab, **c, "paper_rvd": pv[0], "paper_dice": pv[1], "paper_iou": pv[2], "run": str(run.path)}
        )
        disp.append(
            {
                row_name: lab,
                "Rvd": fmt(c["rvd"], c["rvd_lo"], c["rvd_hi"]),
                "Dice": fmt(c["dice"], c["dice_lo"], c["dice_hi"]),
                "IoU": fmt(c["iou"], c["iou_lo"], c["iou_hi"]),
                "Dice (3D, per patient)": fmt(c["dice_patient"], c["dice_patient_lo"], c["dice_patient_hi"]),
                "patients / slices": f"{int(c['n_patients'])} / {int(c['n_slices'])}",
                "paper Rvd / Dice / IoU": " / ".join(fmt(v) for v in pv),
            }
        )
    return Table(key, caption, pd.DataFrame(rows), pd.DataFrame(disp), (notes or []) + [paper.NOTE])


def _vol_table(
    key: str, caption: str, runs: dict[str, Run], paper_vals: dict[str, tuple], ids_fn=None, notes=None
) -> Table:
    rows, disp = [], []
    for lab, run in runs.items():
        ids = ids_fn(run) if ids_fn else None
        c = vol_cells(run, ids)
        pv = paper_vals.get(lab, (math.nan, math.nan))
        row = {"model": lab, **c, "paper_rmse": pv[0], "paper_mae": pv[1], "run": str(run.path)}
        d = {
            "model": lab,
            "RMSE (ml)": fmt(c["rmse"], c["rmse_lo"], c["rmse_hi"]),
            "MAE (ml)": fmt(c["mae"], c["mae_lo"], c["mae_hi"]),
            "patients": int(c["n_patients"]),
        }
        if "reference_volume_ml" in run.patients and run.patients["reference_volume_ml"].notna().any():
            cr = vol_cells(run, ids, reference="reference_volume_ml")
            row.update({"ref_rmse": cr["rmse"], "ref_mae": cr["mae"]})
            d["RMSE / MAE vs dataset reference (ml)"] = f"{fmt(cr['rmse'])} / {fmt(cr['mae'])}"
        d["paper RMSE / MAE (ml)"] = " / ".join(fmt(v) for v in pv)
        rows.append(row)
        disp.append(d)
    return Table(
        key,
        caption,
        pd.DataFrame(rows),
        pd.DataFrame(disp),
        (notes or []) + ["errors against the planimetric volume of the truth masks (exact on the phantom)", paper.NOTE],
    )


def agreement_table(runs: dict[str, Run]) -> Table:
    """Bland-Altman, ICC(2,1), Pearson r of each model's volume, and of automatic ABC/2."""
    rows, disp = [], []

    def add(label: str, measured: np.ndarray, true: np.ndarray) -> None:
        ba = bland_altman(measured, true)
        lo, hi = bootstrap_ci((measured, true), lambda a, b: float(np.mean(a - b)))
        icc, r = icc_2_1(measured, true), pearson_r(measured, true)
        rows.append({"method": label, **ba, "bias_lo": lo, "bias_hi": hi, "icc_2_1": icc, "pearson_r": r})
        disp.append(
            {
                "method": label,
                "bias (ml)": fmt(ba["bias"], lo, hi),
                "95 % limits (ml)": f"{fmt(ba['loa_low'])} to {fmt(ba['loa_high'])}",
                "ICC(2,1)": fmt(icc),
                "Pearson r": fmt(r),
                "patients": ba["n"],
            }
        )

    for lab, run in runs.items():
        p = run.patients
        add(f"{lab} planimetry", p["pred_volume_ml"].to_numpy(float), p["true_volume_ml"].to_numpy(float))
    any_run = next(iter(runs.values()), None)
    if any_run is not None and "true_abc2_ml" in any_run.patients:
        p = any_run.patients[any_run.patients["gt"] > 0]
        add("ABC/2 of the truth masks", p["true_abc2_ml"].to_numpy(float), p["true_volume_ml"].to_numpy(float))
        if "Ours" in runs and "pred_abc2_ml" in runs["Ours"].patients:
            q = runs["Ours"].patients
            add("ABC/2 of Ours' masks", q["pred_abc2_ml"].to_numpy(float), q["true_volume_ml"].to_numpy(float))
    notes = [
        "measured minus true planimetric volume of the truth masks; ICC(2,1) = two-way random, absolute agreement, single measure (McGraw & Wong)",
        "ABC/2 is computed automatically (A = max Feret diameter on the largest slice, B = calliper width perpendicular to A, C = bleed slices x thickness)",
    ]
    return Table(
        "agreement",
        "Volume agreement with the truth (Bland-Altman, ICC, Pearson)",
        pd.DataFrame(rows),
        pd.DataFrame(disp),
        notes,
    )


def abc2_bias_table(runs: dict[str, Run]) -> Table | None:
    """ABC/2 of the truth masks against their exact planimetric volume, by shape subgroup:
    the formula's bias (it assumes an ellipsoid) grows with irregularity."""
    run = next(iter(runs.values()), None)
    if run is None or "true_abc2_ml" not in run.patients:
        return None
    p = run.patients[run.patients["gt"] > 0].copy()
    p["rel_err"] = (p["true_abc2_ml"] - p["true_volume_ml"]) / p["true_volume_ml"]
    irregular = p["patient_id"].isin(subgroup_ids(run, "irregular")[0])
    rows, disp = [], []
    for name, sel in (
        ("regular shape", ~irregular),
        ("irregular shape", irregular),
        ("all with bleed", irregular | ~irregular),
    ):
        q = p[sel]
        v = q["rel_err"].to_numpy(float)
        lo, hi = bootstrap_ci(v)
        row = {
            "group": name,
            "patients": len(q),
            "mean_rel_error": float(np.mean(v)) if len(v) else math.nan,
            "rel_lo": lo,
            "rel_hi": hi,
            "mean_solidity": float(q["solidity"].mean()) if len(q) else math.nan,
        }
        rows.append(row)
        disp.append(
            {
                "group": name,
                "patients": len(q),
                "ABC/2 relative error (mean)": fmt(row["mean_rel_error"], lo, hi),
                "mean solidity": fmt(row["mean_solidity"]),
            }
        )
    return Table(
        "abc2_bias",
        "ABC/2 (automatic, truth masks) vs exact planimetric volume, by shape",
        pd.DataFrame(rows),
        pd.DataFrame(disp),
        [
            "relative error = (ABC/2 - true) / true; positive = overestimation",
            "on the phantom the truth volume is exact",
        ],
    )


def paired_tests_table(runs: dict[str, Run], reference: str = "Ours") -> Table:
    """Paired Wilcoxon tests, ``reference`` vs every other model, on per-patient Dice and |volume error|."""
    rows, disp = [], []
    if reference in runs:
        a = runs[reference].patients.set_index("patient_id")
        for lab, run in runs.items():
            if lab == reference:
                continue
            b = run.patients.set_index("patient_id")
            common = a.index.intersection(b.index)
            for metric, col, fn in (
                ("Dice (3D)", "dice", lambda x: x),
                ("|volume error| (ml)", "volume_error_ml", np.abs),
            ):
                x, y = fn(a.loc[common, col].to_numpy(float)), fn(b.loc[common, col].to_numpy(float))
                w = paired_wilcoxon(x, y)
                rows.append(
                    {
                        "comparison": f"{reference} vs {lab}",
                        "metric": metric,
                        "median_diff": float(np.nanmedian(x - y)) if len(x) else math.nan,
                        **w,
                    }
                )
                disp.append(
                    {
                        "comparison": f"{reference} vs {lab}",
                        "metric": metric,
                        "median difference": fmt(rows[-1]["median_diff"]),
                        "p (Wilcoxon)": fmt(w["p_value"], digits=4),
                        "patients": w["n"],
                    }
                )
    return Table(
        "paired_tests",
        "Paired comparison of models over test patients (Wilcoxon signed-rank)",
        pd.DataFrame(rows),
        pd.DataFrame(disp),
        ["two-sided; patients without a defined value are dropped pairwise"],
    )


def build_tables(runs: list[Run]) -> list[Table]:
    """All tables in the paper's order, plus agreement and paired tests."""
    main, notes = pick_runs(runs, model_order())
    abl, abl_notes = pick_runs(runs, ABLATION_ORDER, fallback={"U-Net (ours, all off)": "U-Net"})
    pair = {k: v for k, v in main.items() if k in ("U-Net", "Ours")}
    tables = [
        _seg_table(
            "table1",
            "Table 1. Segmentation of the four networks (Rvd, Dice, IoU; mean over test slices with bleed, 95 % CI)",
            main,
            paper.TABLE1,
            notes=notes,
        ),
        _vol_table(
            "table2",
            "Table 2. Bleeding-volume measurement of the four networks (RMSE, MAE in ml)",
            main,
            paper.TABLE2,
            notes=notes,
        ),
    ]
    for key_seg, key_vol, tag, title, pseg, pvol in (
        ("table3", "table4", "irregular", "irregular-shape", paper.TABLE3, paper.TABLE4),
        ("table5", "table6", "near_skull", "near-skull", paper.TABLE5, paper.TABLE6),
    ):
        src = subgroup_ids(next(iter(pair.values())), tag)[1] if pair else "n/a"
        sub_notes = [f"subgroup '{tag}' from {src}"]
        ids_fn = lambda run, tag=tag: subgroup_ids(run, tag)[0]  # noqa: E731
        tables.append(
            _seg_table(
                key_seg,
                f"Table {key_seg[-1]}. Segmentation of {title} hematomas, U-Net vs Ours",
                pair,
                pseg,
                ids_fn,
                sub_notes,
            )
        )
        tables.append(
            _vol_table(
                key_vol,
                f"Table {key_vol[-1]}. Volume measurement of {title} hematomas, U-Net vs Ours (ml)",
                pair,
                pvol,
                ids_fn,
                sub_notes,
            )
        )
    t7_runs = {
        ("U-Net" if k == "U-Net (ours, all off)" else "U-Net+SA+CA+SPA" if k == "Ours" else k): v
        for k, v in abl.items()
    }
    tables.append(
        _seg_table(
            "table7",
            "Table 7. Ablation: modules added to the U-Net (SA, SA+CA, SA+CA+SPA)",
            t7_runs,
            paper.TABLE7,
            notes=abl_notes + ["U-Net row = ours with sa=ca=spa=false (same encoder/decoder)"],
            row_name="configuration",
        )
    )
    tables.append(agreement_table(main))
    bias = abc2_bias_table(main)
    if bias is not None:
        tables.append(bias)
    tables.append(paired_tests_table(main))
    return tables
