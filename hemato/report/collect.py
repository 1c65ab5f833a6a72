"""Collect finished runs from their local files (never from W&B).

A run directory is finished when its ``metrics.json`` exists (written last, atomically);
directories with a ``config.yaml`` but no ``metrics.json`` are reported as unfinished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml


@dataclass
class Run:
    """One finished run: its label, config, summary and per-patient/per-slice tables."""

    path: Path
    label: str
    model: str
    flags: dict[str, bool]
    config: dict[str, Any]
    metrics: dict[str, Any]
    patients: pd.DataFrame
    slices: pd.DataFrame
    predictions: Path | None = None
    notes: list[str] = field(default_factory=list)


def model_label(model: dict[str, Any]) -> tuple[str, dict[str, bool]]:
    """Display label of a run's network (from its registration, :mod:`hemato.models.registry`):
    FCN8s / SegNet / U-Net / Ours, ablations of ours as U-Net+SA+..., and its switches."""
    from hemato.models.registry import info

    name = model.get("name", "?")
    try:
        return info(name).label_for(model)
    except KeyError:  # a run of a network this installation does not have
        return name, {}


def find_run_dirs(paths: list[str | Path]) -> tuple[list[Path], list[Path]]:
    """(finished, unfinished) run directories under the given paths (searched recursively)."""
    finished, unfinished = set(), set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such run directory")
        for cfg in [p / "config.yaml"] if (p / "config.yaml").exists() else p.rglob("config.yaml"):
            d = cfg.parent
            if d.name == ".hydra":
                continue
            (finished if (d / "metrics.json").exists() else unfinished).add(d)
    return sorted(finished), sorted(unfinished)


def load_run(path: Path) -> Run:
    config = yaml.safe_load((path / "config.yaml").read_text())
    metrics = json.loads((path / "metrics.json").read_text())
    label, flags = model_label(config.get("model", {}))
    patients = pd.read_csv(path / "test_patients.csv", dtype={"patient_id": str})
    slices = pd.read_csv(path / "test_slices.csv", dtype={"patient_id": str})
    pred = path / "predictions"
    return Run(
        path, label, config["model"]["name"], flags, config, metrics, patients, slices, pred if pred.is_dir() else None
    )


def collect(paths: list[str | Path]) -> tuple[list[Run], list[Path]]:
    """Load every finished run under ``paths``; also return the unfinished ones (skipped)."""
    finished, unfinished = find_run_dirs(paths)
    return [load_run(p) for p in finished], unfinished
