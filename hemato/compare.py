"""Hematoma expansion between two scans of one patient.

    python -m hemato.compare --baseline SCAN_OR_REPORT --followup SCAN_OR_REPORT --output DIR
        [--checkpoint CKPT] [--force] [predict options: --spacing, --slice-spacing, ...]

Each side is a scan (predicted with one model, loaded once: DIR/baseline/, DIR/followup/)
or a folder holding an earlier ``hemato.predict`` report. DIR receives ``compare.json``,
``compare.csv`` and ``overlays/`` (each matched bleed: its largest slice, baseline beside
follow-up).

Expansion flags, each with its usual reference:
* ``>= 6 ml or >= 33 %``: the definition of the PREDICT study (Demchuk et al., Lancet Neurol 2012),
  >= 33 % after Brott et al. (Stroke 1997);
* ``>= 12.5 ml`` and ``>= 26 %``: the absolute and relative definitions compared by Dowlatshahi
  et al. (Neurology 2011).

Refused (one-line error): a side without a volume (spacing unknown, incomplete scan), and
two scans of different patients (DICOM PatientID, compared as hashes) unless ``--force``.
Bleeds are matched by centroid: nearest within ``match_mm`` (20 mm) in the scans' own
patient coordinates. Without registration this holds while the head lies alike in both
scans; unmatched bleeds are listed as new or gone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hemato.data.readers.errors import InputError
from hemato.report_schema import ScanReport
from hemato.rundir import write_atomic

FLAGS = {
    "6ml_or_33pct": (
        "absolute >= 6 ml or relative >= 33 %",
        "Demchuk et al., Lancet Neurol 2012 (PREDICT); Brott et al., Stroke 1997",
    ),
    "12_5ml": ("absolute >= 12.5 ml", "Dowlatshahi et al., Neurology 2011"),
    "26pct": ("relative >= 26 %", "Dowlatshahi et al., Neurology 2011"),
}


def expansion(v0: float, v1: float) -> dict[str, Any]:
    """Absolute (ml) and relative change from ``v0`` to ``v1`` and the expansion flags."""
    d = v1 - v0
    rel = d / v0 if v0 > 0 else (float("inf") if d > 0 else 0.0)
    flags = {"6ml_or_33pct": d >= 6.0 or rel >= 0.33, "12_5ml": d >= 12.5, "26pct": rel >= 0.26}
    return {"baseline_ml": v0, "followup_ml": v1, "change_ml": d, "change_relative": rel, "flags": flags}


def match_bleeds(
    b0: list[dict], b1: list[dict], match_mm: float = 20.0
) -> list[tuple[int | None, int | None, float | None]]:
    """Greedy nearest-centroid matching (mm): pairs (i0, i1, distance), then the unmatched
    of each side with None on the other."""
    pairs = []
    cand = sorted(
        (float(np.linalg.norm(np.subtract(a["centroid_mm"], b["centroid_mm"]))), i, j)
        for i, a in enumerate(b0)
        for j, b in enumerate(b1)
        if a.get("centroid_mm") and b.get("centroid_mm")
    )
    used0, used1 = set(), set()
    for dist, i, j in cand:
        if dist <= match_mm and i not in used0 and j not in used1:
            pairs.append((i, j, dist))
            used0.add(i)
            used1.add(j)
    pairs += [(i, None, None) for i in range(len(b0)) if i not in used0]
    pairs += [(None, j, None) for j in range(len(b1)) if j not in used1]
    return pairs


def _side(arg: str | Path, out: Path, loaded: Any, checkpoint: Any, **kw: Any) -> tuple[dict, Path]:
    """(report, report folder): an existing report folder, or the scan predicted into ``out``."""
    from hemato.predict import predict

    p = Path(arg)
    if (p / "report.json").is_file():  # read through the report schema (its version is checked)
        return ScanReport.load(p).as_dict(), p
    return predict(checkpoint, p, out, loaded=loaded, **kw), out


def _overlay_pair(d0: Path, d1: Path, n0: int, n1: int, path: Path) -> Path | None:
    """The two report folders' overlays of slices ``n0`` and ``n1`` side by side."""
    import cv2

    a = sorted((d0 / "overlays").glob("*.png"))
    b = sorted((d1 / "overlays").glob("*.png"))
    f0 = next((f for f in a if f.stem == f"slice_{n0}"), None)
    f1 = next((f for f in b if f.stem == f"slice_{n1}"), None)
    if f0 is None or f1 is None:
        return None
    i0, i1 = cv2.imread(str(f0)), cv2.imread(str(f1))
    if i0.shape[0] != i1.shape[0]:
        i1 = cv2.resize(i1, (int(i1.shape[1] * i0.shape[0] / i1.shape[0]), i0.shape[0]))
    cv2.imwrite(str(path), np.concatenate([i0, np.zeros((i0.shape[0], 8, 3), np.uint8), i1], 1))
    return path


def compare(
    baseline: str | Path,
    followup: str | Path,
    output: str | Path,
    checkpoint: str | Path | None = None,
    force: bool = False,
    match_mm: float = 20.0,
    **kw: Any,
) -> dict[str, Any]:
    """Both volumes, their change, the expansion flags, per-bleed changes; writes ``output``."""
    from hemato.weights.load import load_model

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    loaded = None
    if not ((Path(baseline) / "report.json").is_file() and (Path(followup) / "report.json").is_file()):
        if checkpoint is None:
            from hemato.weights.load import default_checkpoint

            checkpoint = default_checkpoint()
        loaded = load_model(checkpoint, kw.get("device", "cpu"), precision=kw.pop("precision", "32"))
    r0, d0 = _side(baseline, out / "baseline", loaded, checkpoint, **kw)
    r1, d1 = _side(followup, out / "followup", loaded, checkpoint, **kw)
    for name, r, src in (("baseline", r0, baseline), ("follow-up", r1, followup)):
        if r["volume_ml"] is None:
            raise InputError(Path(src), f"the {name} has no volume ({r['volume_status']}): nothing to compare")
    k0, k1 = r0.get("patient_key"), r1.get("patient_key")
    if k0 and k1 and k0 != k1 and not force:
        raise InputError(
            Path(followup),
            "the two scans are of different patients (DICOM PatientID differs); give --force to compare anyway",
        )
    m0, m1 = r0.get("model", {}).get("sha256"), r1.get("model", {}).get("sha256")
    result: dict[str, Any] = {
        **expansion(float(r0["volume_ml"]), float(r1["volume_ml"])),
        "flag_definitions": {k: {"rule": v[0], "reference": v[1]} for k, v in FLAGS.items()},
        "patient_check": "same DICOM PatientID"
        if k0 and k1 and k0 == k1
        else ("forced" if k0 and k1 else "not checkable (no DICOM PatientID on both sides)"),
        "same_model": bool(m0 and m0 == m1),
        "reports": {"baseline": str(d0), "followup": str(d1)},
        "bleeds": [],
    }
    (out / "overlays").mkdir(exist_ok=True)
    b0, b1 = r0.get("bleeds") or [], r1.get("bleeds") or []
    for n, (i, j, dist) in enumerate(match_bleeds(b0, b1, match_mm)):
        v0 = b0[i]["volume_ml"] if i is not None else 0.0
        v1 = b1[j]["volume_ml"] if j is not None else 0.0
        row = {
            "baseline_bleed": i,
            "followup_bleed": j,
            "distance_mm": dist,
            "status": "matched" if i is not None and j is not None else ("new" if i is None else "gone"),
            **expansion(float(v0 or 0.0), float(v1 or 0.0)),
        }
        if i is not None and j is not None:
            n0, n1 = r0["slices"][b0[i]["largest_slice"]]["slice"], r1["slices"][b1[j]["largest_slice"]]["slice"]
            p = _overlay_pair(d0, d1, n0, n1, out / "overlays" / f"bleed_{n + 1}.png")
            row["overlay"] = str(p.relative_to(out)) if p else None
        result["bleeds"].append(row)
    write_atomic(out / "compare.json", json.dumps(result, indent=2, default=float))
    import pandas as pd

    pd.DataFrame(
        [
            {
                "baseline_ml": result["baseline_ml"],
                "followup_ml": result["followup_ml"],
                "change_ml": result["change_ml"],
                "change_relative": result["change_relative"],
                **{f"flag_{k}": v for k, v in result["flags"].items()},
                "patient_check": result["patient_check"],
            }
        ]
    ).to_csv(out / "compare.csv", index=False)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hemato.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--baseline", required=True, help="scan or an earlier report folder")
    ap.add_argument("--followup", required=True, help="scan or an earlier report folder")
    ap.add_argument("--output", required=True)
    ap.add_argument("--checkpoint", help="model for both scans (default: the shipped one)")
    ap.add_argument("--force", action="store_true", help="compare scans of different patients")
    ap.add_argument("--spacing", nargs=2, type=float, metavar=("ROW_MM", "COL_MM"))
    ap.add_argument("--slice-spacing", dest="thickness", type=float, metavar="MM")
    ap.add_argument("--precision", choices=["auto", "32", "bf16"], default="32", help="as hemato.predict's")
    a = ap.parse_args(argv)
    try:
        r = compare(
            a.baseline,
            a.followup,
            a.output,
            a.checkpoint,
            a.force,
            spacing=a.spacing,
            thickness=a.thickness,
            precision=a.precision,
        )
    except InputError as e:
        print(f"hemato.compare: error: {e}", file=sys.stderr)
        return 2
    flags = ", ".join(FLAGS[k][0] for k, v in r["flags"].items() if v) or "none"
    print(
        f"{r['baseline_ml']:.2f} ml -> {r['followup_ml']:.2f} ml ({r['change_ml']:+.2f} ml, {100 * r['change_relative']:+.0f} %); expansion: {flags} -> {a.output}/compare.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
