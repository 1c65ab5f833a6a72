"""Seed-to-seed spread (``python -m hemato.cv seeds``): variants of one network, several seeds
each on one split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hemato.evaluation.cv_report import fp_rule, fp_threshold_px, labelled_runs
from hemato.evaluation.stats import bootstrap_ci, fmt_ci, mean_ci_t, wilcoxon_p
from hemato.rundir import write_atomic


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
            m, ci, p = mean_ci_t(d)
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
                f"{fmt_ci(m, ci)} | {p:.3g} | {a} {r['a_higher']} of {len(common)} | "
                f"{fmt_ci(r['per_patient_mean_diff'], r['per_patient_ci'])} (n={len(dp)}) | {wp:.3g} |"
            )
    md += [
        "",
        f"False-positive patient: {fp_rule()}.",
    ]
    write_atomic(out / "seeds.md", "\n".join(md) + "\n")
    write_atomic(out / "seeds.json", json.dumps(summary, indent=2, default=float))
    return summary
