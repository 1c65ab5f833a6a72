"""Hydra launchers: the SLURM config composes onto submitit's SlurmLauncher, and a sweep
runs through submitit (its local executor, the same code path without a cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from tests.test_run import ROOT, run_hemato


def test_slurm_launcher_config_composes() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=a100", "hydra.launcher.gpus_per_node=2"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node) == ("a100", 2, 1)
    assert launcher.timeout_min > 0 and launcher.mem_gb > 0


@pytest.mark.slow
def test_sweep_runs_through_submitit(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    run_hemato(
        tmp_path, "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "model=unet", "seed=1,2"
    )
    sweeps = list((tmp_path / "runs" / "cpu").glob("multirun_*"))
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name[0].isdigit())
    assert [j.name for j in jobs] == ["0_unet", "1_unet"]
    seeds = [json.loads((j / "provenance.json").read_text())["seed"] for j in jobs]
    assert seeds == [1, 2]
    assert all((j / "metrics.json").is_file() for j in jobs)
    assert list((sweeps[0] / ".submitit").glob("*/*.out"))  # submitit ran the jobs
