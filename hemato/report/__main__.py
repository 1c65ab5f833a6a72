"""``python -m hemato.report RUN_DIR [RUN_DIR ...] --out DIR``."""

from __future__ import annotations

import argparse
import sys

from hemato.report import build_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hemato.report", description="Tables 1-7, figures 2-6 and report.html from finished runs."
    )
    ap.add_argument("runs", nargs="+", help="run directories, or folders (e.g. a multirun) that contain them")
    ap.add_argument("--out", default="reports/latest", help="output folder (default: reports/latest)")
    ap.add_argument(
        "--wandb",
        action="store_true",
        help="also log the report as one W&B run (offline unless WANDB_MODE=online; `wandb sync` uploads)",
    )
    args = ap.parse_args(argv)
    try:
        summary = build_report(args.runs, args.out, wandb=args.wandb)
    except (FileNotFoundError, ValueError) as e:
        print(f"hemato.report: error: {e}", file=sys.stderr)
        return 2
    for s in summary["skipped_unfinished"]:
        print(f"skipped (not finished, no metrics.json): {s}")
    if summary.get("wandb_run"):
        print(f"W&B run {summary['wandb_run']} (offline unless WANDB_MODE=online) -> {args.out}/wandb/")
    print(
        f"{len(summary['runs'])} runs -> {args.out}/report.html ({len(summary['tables'])} tables, {len(summary['figures'])} figures)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
