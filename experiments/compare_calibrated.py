"""Two shipped operating points side by side, out of fold (each ``calibration.json`` of
``python -m hemato.cv calibrate``: every patient scored with the rule chosen on the other folds).

    .venv/bin/python experiments/compare_calibrated.py v7=reports/ctich/v7_ship/calibration.json \
        v4=reports/ctich/v5_ship/calibration.json [--out reports/ctich/v7_ship/against_v4.md]

Prints (and with --out writes) a Markdown table per model: per-patient Dice of the patients
with bleed (bootstrap CI), bleeds found (Dice >= 0.2) by true size, bleed-free patients given a
bleed, median |relative volume error| of the bleeds >= 2 ml (volumes at the collection's
assumed 0.45 mm x 5 mm voxel); then the first model minus the second on the patients both
scored (bootstrap CI, Wilcoxon signed-rank p).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hemato.evaluation.oof import FOUND_DICE, VOXEL_ML, found_by_size  # noqa: E402
from hemato.evaluation.stats import bootstrap_ci, fmt_ci, paired_test  # noqa: E402


def row(label: str, cal: dict) -> tuple[str, pd.DataFrame]:
    p = pd.DataFrame(cal["patients"]).astype({"patient_id": str})
    bleed = p[p["gt"] > 0].copy()
    bleed["true_ml"] = bleed["gt"] * VOXEL_ML
    big = bleed[bleed["true_ml"] >= 2.0]
    rvd = (big["pred"] - big["gt"]).abs() / big["gt"]
    found = found_by_size(bleed)
    free = p[p["gt"] == 0]
    d = bleed["dice"].to_numpy(float)
    cells = [
        label,
        str(len(p)),
        fmt_ci(float(d.mean()), bootstrap_ci(d)),
        f"{int((bleed['dice'] >= FOUND_DICE).sum())} of {len(bleed)} ("
        + ", ".join(f"{f['found']} of {f['n']} {f['size']}" for f in found)
        + ")",
        f"{int(free['fp'].sum())} of {len(free)}",
        f"{float(np.median(rvd)):.2f}" if len(rvd) else "-",
    ]
    return "| " + " | ".join(cells) + " |", p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs=2, metavar="LABEL=CALIBRATION_JSON")
    ap.add_argument("--out")
    a = ap.parse_args()
    md = [
        "| model | patients | Dice (patient, with bleed) | found (Dice >= 0.2), by true size | bleed-free given a bleed | median abs Rvd (>= 2 ml) |",
        "|---|---|---|---|---|---|",
    ]
    tables = []
    for spec in a.models:
        label, path = spec.split("=", 1)
        line, p = row(label, json.loads(Path(path).read_text()))
        md.append(line)
        tables.append((label, p))
    (la, pa), (lb, pb) = tables
    r = paired_test(pa, pb)
    md += [
        "",
        f"Paired per patient, {la} - {lb} (n = {r['n']} with bleed scored by both): "
        f"{fmt_ci(r['mean_diff'], r['ci'])}, Wilcoxon p {r['wilcoxon_p']:.3g}.",
    ]
    text = "\n".join(md) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
