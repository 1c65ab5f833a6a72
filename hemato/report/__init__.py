"""Report stage: the paper's tables and figures from finished runs' local files.

``python -m hemato.report RUN_DIR... --out DIR`` (run directories or folders holding them).
The report reads only files a run wrote; it never imports the task or the datamodule.
"""

from __future__ import annotations

import json
from pathlib import Path

from hemato.rundir import write_atomic

__all__ = ["build_report"]


def wandb_run_ids(paths: list[Path]) -> dict[str, str]:
    """Run folder -> its W&B run id (from ``wandb/offline-run-*-<id>`` or ``run-*-<id>``)."""
    ids = {}
    for p in paths:
        found = sorted(Path(p).glob("wandb/*run-*"))
        if found:
            ids[str(p)] = found[-1].name.rsplit("-", 1)[-1]
    return ids


def log_report_to_wandb(
    tables: list, figs: dict[str, Path], files: list[Path], run_paths: list[Path], out: Path, project: str = "hemato"
) -> str:
    """One W&B run (job type ``report``) holding every table (anything with ``key`` and a
    DataFrame ``data``) as a ``wandb.Table`` (each row's W&B run id beside its run folder
    where a row names one), every figure as an image and ``files`` (report.html, the
    Markdown tables) as an artifact. Offline unless WANDB_MODE says otherwise; ``wandb sync``
    uploads it. Returns the run's id."""
    import os

    import wandb

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    ids = wandb_run_ids(run_paths)
    run = wandb.init(
        project=project,
        job_type="report",
        name=f"report-{out.name}",
        dir=str(out),
        config={"runs": [str(p) for p in run_paths], "wandb_runs": ids},
    )
    for t in tables:
        df = t.data.copy()
        if "run" in df:
            df["wandb_run"] = [ids.get(str(v), "") for v in df["run"]]
        run.log(
            {f"tables/{t.key}": wandb.Table(dataframe=df.astype({c: str for c in df.columns if df[c].dtype == object}))}
        )
    for name, p in figs.items():
        run.log({f"figures/{p.stem}": wandb.Image(str(p), caption=name)})
    art = wandb.Artifact(f"report-{out.name}".replace("/", "_"), type="report")
    for f in files:
        art.add_file(str(f))
    run.log_artifact(art)
    rid = run.id
    run.finish()
    return rid


def build_report(run_paths: list[str | Path], out_dir: str | Path, wandb: bool = False) -> dict:
    """Write tables (CSV + Markdown), figures (PNG), report.md and report.html into ``out_dir``
    (and with ``wandb``, the same as one W&B run: :func:`log_report_to_wandb`).

    Returns a summary dict (runs used, runs skipped, files written).
    """
    # imported here, not at the top: the tables pull in scipy.stats (~1 s), and importing any
    # module of this package runs this __init__
    from hemato.report import figures
    from hemato.report.collect import collect
    from hemato.report.html import render
    from hemato.report.tables import build_tables, model_order, pick_runs

    runs, unfinished = collect(run_paths)
    if not runs:
        raise FileNotFoundError(f"no finished run (with metrics.json) under {', '.join(map(str, run_paths))}")
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    tables = build_tables(runs)
    for t in tables:
        write_atomic(out / "tables" / f"{t.key}.csv", t.data.to_csv(index=False))
        write_atomic(out / "tables" / f"{t.key}.md", t.markdown())
    main, _ = pick_runs(runs, model_order())
    pair = {k: v for k, v in main.items() if k in ("U-Net", "Ours")}
    figs: dict[str, Path] = {}
    fdir = out / "figures"
    if main:
        p = figures.overlay_figure(
            main,
            figures.choose_slices(main),
            "Fig. 2. Segmentation of the four networks (truth green)",
            fdir / "fig2_overlays.png",
        )
        if p:
            figs["Fig. 2. Contour overlays, all networks"] = p
        figs["Fig. 3. Measured vs true volume per patient"] = figures.volume_curves(main, fdir / "fig3_volumes.png")
        figs["Fig. 4. Volume error per patient"] = figures.error_curves(main, fdir / "fig4_errors.png")
        figs["Bland-Altman"] = figures.bland_altman_plot(main, fdir / "bland_altman.png")
        p = figures.abc2_bias_plot(main, fdir / "abc2_bias.png")
        if p:
            figs["ABC/2 bias vs irregularity"] = p
    if pair:
        from hemato.report.tables import subgroup_ids

        anyrun = next(iter(pair.values()))
        for tag, name, fig in (
            ("irregular", "irregular-shape", "fig5_irregular.png"),
            ("near_skull", "near-skull", "fig6_near_skull.png"),
        ):
            ids = subgroup_ids(anyrun, tag)[0]
            p = figures.overlay_figure(
                pair,
                figures.choose_slices(pair, ids),
                f"Fig. {fig[3]}. {name} hematomas, U-Net vs Ours (truth green)",
                fdir / fig,
            )
            if p:
                figs[f"Fig. {fig[3]}. {name} hematomas, U-Net vs Ours"] = p
    md = ["# hemato report", ""] + [t.markdown() for t in tables]
    md += [f"![{name}](figures/{p.name})\n" for name, p in figs.items()]
    write_atomic(out / "report.md", "\n".join(md))
    run_names = [f"{r.label}: {r.path}" for r in runs]
    write_atomic(out / "report.html", render(tables, figs, run_names, [str(u) for u in unfinished]))
    summary = {
        "runs": run_names,
        "skipped_unfinished": [str(u) for u in unfinished],
        "tables": [t.key for t in tables],
        "figures": [p.name for p in figs.values()],
    }
    if wandb:
        summary["wandb_run"] = log_report_to_wandb(tables, figs, [out / "report.html"], [r.path for r in runs], out)
    write_atomic(out / "report.json", json.dumps(summary, indent=2))
    return summary
