"""The ``python -m hemato.bench`` command line (the measurements are described in the package)."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hemato.bench.measure import bench_model, conv_ceiling, data_rate, phantom_scans, recipe_rate
from hemato.bench.peak import calibrated_peak, cpu_peak
from hemato.bench.tables import derive_ratios, precision_table, table
from hemato.inference import set_threads

REFERENCE = "unet"


def _run_child(args: list[str]) -> dict[str, Any]:
    """One model in a fresh interpreter (its own peak memory); returns its JSON line."""
    proc = subprocess.run([sys.executable, "-m", "hemato.bench", "--child", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from hemato.models.registry import available, networks

    paper = [i.name for i in networks(paper=True)]  # the default: the paper's four, from their registrations
    ap = argparse.ArgumentParser(
        prog="python -m hemato.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--models",
        default=",".join(paper),
        help=f"comma-separated registered networks (default {','.join(paper)}); {REFERENCE} is always added as the reference",
    )
    ap.add_argument("--size", type=int, default=256, help="network input size (pixels)")
    ap.add_argument("--width", type=int, default=16, help="base width (channels of the first stage)")
    ap.add_argument("--batch", type=int, default=8, help="inference batch (slices)")
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timing window per figure")
    ap.add_argument("--scan-slices", type=int, default=30)
    ap.add_argument("--scan-size", type=int, default=512)
    ap.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="also bench a trained hemato .ckpt (its own size/width), with Dice of each inference path",
    )
    ap.add_argument(
        "--accuracy-scans",
        type=int,
        default=8,
        help="unseen phantom scans on which a --checkpoint's Dice/volume is measured per inference path",
    )
    ap.add_argument("--paper", action="store_true", help="add inference of the paper-size networks (512 px, width 64)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")
    ap.add_argument(
        "--ghz", type=float, default=None, help="clock for the theoretical peak (default: from /proc/cpuinfo)"
    )
    ap.add_argument(
        "--fma-units", type=int, default=None, help="FMA units per core for the theoretical peak (default: 2, assumed)"
    )
    ap.add_argument(
        "--recipe",
        action="append",
        default=None,
        help="experiment profile whose training rate is measured per precision (default: ctich; 'none' skips)",
    )
    ap.add_argument("--json", default="reports/bench.json", help="where the JSON goes")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--no-scan", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-train", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    threads = set_threads(a.threads)

    if a.child:
        ckpt = a.checkpoint[0] if a.checkpoint else None
        scans = [] if a.no_scan else phantom_scans(a.accuracy_scans if ckpt else 1, a.scan_slices, a.scan_size)
        r = bench_model(
            a.model or "",
            a.size,
            a.width,
            a.batch,
            a.train_batch,
            a.device,
            a.seconds,
            scans,
            ckpt,
            train=not (a.no_train or ckpt),
        )
        print(json.dumps(r))
        return 0

    t0 = time.time()
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in available()]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {available()}")
    if REFERENCE in models:
        models.remove(REFERENCE)
    models.insert(0, REFERENCE)
    peak = (
        calibrated_peak(cpu_peak(a.ghz, a.fma_units))
        if a.device == "cpu"
        else {"peak_gflops": float("nan"), "derivation": "GPU: not derived"}
    )
    print(f"[bench] {peak.get('cpu', a.device)}; torch {torch.__version__}, {threads} threads")
    print(f"[bench] fp32 peak: {peak['derivation']}")
    if "bf16_derivation" in peak:
        print(f"[bench] bf16 peak: {peak['bf16_derivation']}")
    ceiling = conv_ceiling(a.device, seconds=a.seconds / 2)
    print(
        f"[bench] best large-convolution rate: {ceiling['best_gflops']:.1f} GFLOP/s ({ceiling['best']['shape']}, {ceiling['best']['format']})"
        + (
            f" = {100 * ceiling['best_gflops'] / peak['peak_gflops']:.0f} % of peak"
            if peak["peak_gflops"] == peak["peak_gflops"]
            else ""
        )
    )
    loader = data_rate(a.size, a.train_batch, seconds=a.seconds)
    print(
        f"[bench] training data path: {loader['loader_slices_s']:.0f} slices/s at {a.size} px (one process, augmentation included)"
    )
    common = [
        "--size",
        str(a.size),
        "--width",
        str(a.width),
        "--batch",
        str(a.batch),
        "--train-batch",
        str(a.train_batch),
        "--seconds",
        str(a.seconds),
        "--scan-slices",
        str(a.scan_slices),
        "--scan-size",
        str(a.scan_size),
        "--device",
        a.device,
        "--accuracy-scans",
        str(a.accuracy_scans),
    ]
    if a.threads:
        common += ["--threads", str(a.threads)]
    rows = []
    for m in models:
        print(f"[bench] {m} @ {a.size} px, width {a.width} ...", flush=True)
        rows.append(_run_child(["--model", m, *common]))
    for ck in a.checkpoint:
        print(f"[bench] checkpoint {ck} ...", flush=True)
        rows.append(_run_child(["--checkpoint", ck, *common]))
    paper_rows = []
    if a.paper:
        for m in ("ours", REFERENCE):
            print(f"[bench] paper size: {m} @ 512 px, width 64 (inference) ...", flush=True)
            args = [
                "--model",
                m,
                "--size",
                "512",
                "--width",
                "64",
                "--batch",
                "2",
                "--seconds",
                str(a.seconds),
                "--device",
                a.device,
                "--no-scan",
                "--no-train",
            ]
            if a.threads:
                args += ["--threads", str(a.threads)]
            paper_rows.append(_run_child(args))
    recipes = []
    for exp in [e for e in (a.recipe or ["ctich"]) if e != "none"]:
        print(f"[bench] training rate of experiment={exp} per precision ...", flush=True)
        recipes.append(recipe_rate(exp, a.device, a.seconds))
    ref = rows[0]
    print()
    derive_ratios(rows + paper_rows, peak["peak_gflops"], peak.get("bf16_peak_gflops", float("nan")), ref)
    print(table(rows + paper_rows))
    print(
        "\n  fp32 and bf16 side by side (bf16: channels-last + folded BN under autocast for inference, autocast for training):"
    )
    print(precision_table(rows + paper_rows))
    for rc in recipes:
        rates = ", ".join(
            f"{k.removeprefix('train_slices_s_')} {v:.1f} slices/s"
            + (
                f" (training steps of one run: {rc['train_minutes_' + k.removeprefix('train_slices_s_')]:.1f} min)"
                if "train_minutes_" + k.removeprefix("train_slices_s_") in rc
                else ""
            )
            for k, v in rc.items()
            if k.startswith("train_slices_s_")
        )
        print(
            f"\n  experiment={rc['experiment']}: {rc['model']} width {rc['width']}, {rc['in_channels']} input channels, "
            f"{rc['size']} px patches, batch {rc['batch']}: {rates}; {rc['train_slices_per_run']} training patches per run"
        )
    fastest_train = max((r.get("train_slices_s", 0.0) for r in rows), default=0.0)
    if fastest_train:
        ratio = loader["loader_slices_s"] / fastest_train
        verdict = (
            "the loader is not the bottleneck"
            if ratio >= 2
            else "the loader may starve training: raise data.num_workers"
        )
        print(
            f"\n  data path {loader['loader_slices_s']:.0f} slices/s = {ratio:.1f}x the fastest training rate: {verdict}"
        )
    print(
        "\n  util % = inference GFLOP/s / theoretical peak; scan s = one "
        f"{a.scan_slices}x{a.scan_size}x{a.scan_size} scan: plain (full frame), fast (head crop + slice skip + channels_last + folded BN), "
        "onnx (onnxruntime, full frame); report s = hemato.predict end to end from a NIfTI file (trained checkpoints); ratios to the plain U-Net of the same size"
    )
    print(
        "  agreement with the plain path (untrained rows: ONNX only, their masks are noise around 0.5;"
        " the head-crop path is judged on trained checkpoints):"
    )
    for r in rows:
        if "fast_vs_plain_dice" not in r:
            continue
        line = f"  {r['model']:>7s} {r['size']}/{r['width']}:"
        if "onnx_vs_plain_dice" in r:
            line += f" onnx mask Dice {r['onnx_vs_plain_dice']:.4f} (max |dV| {r['onnx_vs_plain_abs_ml']:.3f} ml)"
        if r.get("checkpoint"):
            line += (
                f"; fast mask Dice {r['fast_vs_plain_dice']:.4f} (max |dV| {r['fast_vs_plain_abs_ml']:.2f} ml) over {r['accuracy_scans']} unseen scans"
                "; vs truth: "
                + ", ".join(
                    f"{k} Dice {r['dice_' + k]:.3f} / volume MAE {r['abs_volume_error_ml_' + k]:.2f} ml"
                    for k in ("plain", "fast", "onnx")
                    if "dice_" + k in r
                )
            )
        print(line)
    out = {
        "machine": {
            **peak,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": threads,
        },
        "conv_ceiling": ceiling,
        "data_path": loader,
        "settings": vars(a),
        "models": rows,
        "paper_size": paper_rows,
        "recipes": recipes,
        "seconds": round(time.time() - t0, 1),
    }
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float))
    print(f"\n[bench] wrote {path} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
