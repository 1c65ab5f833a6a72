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
import sys
from pathlib import Path
from typing import Any

from hemato.engine import parse_overrides
from hemato.evaluation.calibrate import calibrate_components
from hemato.evaluation.cv_report import cv_report
from hemato.evaluation.oof import evaluate_run
from hemato.evaluation.seeds import seeds_report
from hemato.evaluation.stats import fmt_ci
from hemato.rundir import write_atomic


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
    rp.add_argument(
        "--wandb",
        action="store_true",
        help="also log the tables as one W&B report run (offline unless WANDB_MODE=online; `wandb sync` uploads)",
    )
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
                f"cross-validated component rules: per-patient Dice (bleed) {fmt_ci(c['dice_patient'], c['dice_patient_ci'])}, "
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
                        f"{k}: {fmt_ci(r['mean_diff'], r['ci_t'])} over {r['n_seeds']} seeds, paired t p {r['paired_t_p']:.3g} -> {a.out}/seeds.md"
                    )
        else:
            s = cv_report(a.runs, a.out)
            if a.wandb:
                from hemato.evaluation.cv_report import labelled_runs, oof_tables
                from hemato.report import log_report_to_wandb

                out = Path(a.out)
                figs = {Path(f).stem: out / f for f in s["figures"]}
                files = [out / "table1_oof.md", out / "cv_summary.json"]
                rid = log_report_to_wandb(oof_tables(s), figs, files, [r for _, r in labelled_runs(a.runs)], out)
                print(f"W&B report run {rid} -> {out}/wandb")
            for label, m in s["models"].items():
                print(
                    f"{label}: Dice (patient) {fmt_ci(m['dice_patient'], m['dice_patient_ci'])}, FP patients {m['fp_patients']} of {m['n_patients_without_bleed']} -> {a.out}/table1_oof.md"
                )
    except (FileNotFoundError, ValueError) as e:
        print(f"hemato.cv: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
