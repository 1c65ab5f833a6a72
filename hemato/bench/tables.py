"""The benchmark's printed tables and the ratios they show."""

from __future__ import annotations

import math
from typing import Any


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _fixed(cols: list[tuple[str, str, int]], rows: list[dict[str, Any]]) -> str:
    header = [c[1] for c in cols]
    body = [[_fmt(r.get(k), nd) if k != "params" else f"{r[k]:,}" for k, _, nd in cols] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def derive_ratios(rows: list[dict[str, Any]], peak: float, bf16_peak: float, ref: dict[str, Any] | None) -> None:
    """Add to each row (in place, so the JSON has them too) the utilisations of each
    precision's own peak (inference; training against the fp32 / bf16 peak), the bf16/fp32
    ratios, and the ratios to the reference (plain U-Net) row of the same size and width."""
    for r in rows:
        r["util"] = 100 * r["infer_gflops"] / peak if peak == peak else float("nan")
        r["util_bf16"] = 100 * r["infer_gflops_bf16"] / bf16_peak if "infer_gflops_bf16" in r else None
        r["infer_x_bf16"] = r["infer_slices_s_bf16"] / r["infer_slices_s"] if "infer_slices_s_bf16" in r else None
        if "train_slices_s" in r:
            r["train_util"] = 100 * r["train_gflops"] / peak
        if "train_slices_s_bf16" in r:
            r["train_x_bf16"] = r["train_slices_s_bf16"] / r["train_slices_s"]
            r["train_util_bf16"] = 100 * r["train_gflops_bf16"] / bf16_peak
        if ref is not None and r.get("size") == ref.get("size") and r.get("width") == ref.get("width"):
            r["infer_ratio"] = r["infer_slices_s"] / ref["infer_slices_s"]
            if "train_slices_s" in r and "train_slices_s" in ref:
                r["train_ratio"] = r["train_slices_s"] / ref["train_slices_s"]


def precision_table(rows: list[dict[str, Any]]) -> str:
    """fp32 and bf16 side by side per network (after :func:`derive_ratios`): slices/s, the
    bf16/fp32 ratio and the utilisation of each precision's own peak."""
    cols = [
        ("model", "model", 0),
        ("size", "px", 0),
        ("width", "w", 0),
        ("infer_slices_s", "inf fp32 sl/s", 1),
        ("infer_slices_s_bf16", "inf bf16 sl/s", 1),
        ("infer_x_bf16", "bf16/fp32", 2),
        ("util", "util fp32 %", 1),
        ("util_bf16", "util bf16 %", 1),
        ("train_slices_s", "trn fp32 sl/s", 1),
        ("train_slices_s_bf16", "trn bf16 sl/s", 1),
        ("train_x_bf16", "bf16/fp32", 2),
        ("train_util", "trn util fp32 %", 1),
        ("train_util_bf16", "trn util bf16 %", 1),
    ]
    return _fixed(cols, rows)


def table(rows: list[dict[str, Any]]) -> str:
    """The fp32 figures as a fixed-width table (after :func:`derive_ratios`); ratios are to
    the reference (plain U-Net) row."""
    cols = [
        ("model", "model", 0),
        ("size", "px", 0),
        ("width", "w", 0),
        ("params", "params", 0),
        ("gflop_per_slice", "GFLOP/sl", 2),
        ("infer_slices_s", "inf sl/s", 1),
        ("infer_format", "inf fmt", 0),
        ("infer_gflops", "inf GFLOP/s", 1),
        ("util", "util %", 1),
        ("scan_s_plain", "scan s", 2),
        ("scan_s_fast", "fast s", 2),
        ("scan_s_onnx", "onnx s", 2),
        ("report_s", "report s", 2),
        ("train_slices_s", "train sl/s", 1),
        ("train_format", "trn fmt", 0),
        ("peak_memory_mb", "peak MB", 0),
        ("infer_ratio", "inf/ref", 2),
        ("train_ratio", "trn/ref", 2),
    ]
    return _fixed(cols, rows)
