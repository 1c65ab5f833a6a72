"""Lightning DDP over 2 CPU processes (gloo): training runs, and the synced per-slice and
per-patient test metrics equal those of one process on the same checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.test_run import check_run_dir, run_hemato


def _only_run(root: Path) -> Path:
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process(tmp_path: Path) -> None:
    # odd patient/slice counts, so DistributedSampler pads with duplicated slices
    common = ["data.source.n_patients=9", "data.source.max_slices=23"]
    proc = run_hemato(tmp_path, *common, "trainer=ddp_cpu", "task_name=ddp_train")
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    trained = _only_run(tmp_path / "runs" / "ddp_train")
    metrics = check_run_dir(trained, "ours")
    assert metrics["world_size"] == 2 and metrics["trained"]
    ckpt = trained / "checkpoints" / "best.ckpt"

    run_hemato(tmp_path, *common, "trainer=ddp_cpu", "train=false", f"ckpt_path={ckpt}", "task_name=ddp_test")
    run_hemato(tmp_path, *common, "train=false", f"ckpt_path={ckpt}", "task_name=single_test")
    ddp, single = _only_run(tmp_path / "runs" / "ddp_test"), _only_run(tmp_path / "runs" / "single_test")
    m_ddp, m_single = (json.loads((r / "metrics.json").read_text()) for r in (ddp, single))
    assert (m_ddp["world_size"], m_single["world_size"]) == (2, 1)
    assert not m_ddp["trained"]
    assert m_ddp["test"] == m_single["test"]  # every summary number, exactly
    for name in ("test_slices.csv", "test_patients.csv"):
        a, b = pd.read_csv(ddp / name), pd.read_csv(single / name)
        pd.testing.assert_frame_equal(a, b)
    # every test slice counted exactly once, although the sampler pads an odd count
    n_test = json.loads((single / "split.json").read_text())["n_slices"]["test"]
    slices = pd.read_csv(ddp / "test_slices.csv")
    assert len(slices) == n_test and not slices.duplicated(["patient_id", "slice_index"]).any()


def test_train_false_needs_a_checkpoint(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "hemato.run", "train=false", f"paths.runs_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "train=false needs ckpt_path" in proc.stderr
