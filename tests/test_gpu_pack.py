"""experiments/gpu_pack.py and experiments/ctich_cv_gpu.sh: the pack a GPU machine trains
from is what training sees (masks exact, images within the recorded error), it refuses what
does not fit, and the whole chain (pack -> train -> collect -> unpack -> out-of-fold
evaluation on the native slices) runs here at tiny size."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from hemato.data.readers.images import read_mask, read_slice
from hemato.data.transforms import resize_mask, resize_slice

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "ctich-sample" / "slices.csv"
spec = importlib.util.spec_from_file_location("gpu_pack", ROOT / "experiments" / "gpu_pack.py")
gpu_pack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_pack)


def test_a_lossless_pack_holds_exactly_the_slices_training_caches(tmp_path: Path) -> None:
    info = gpu_pack.pack(SAMPLE, tmp_path, 256, 63.0, [101, 90], wheels=False)
    assert info["images"]["quality"] == 101 and info["images"]["max_abs_levels"] == 0
    src = pd.read_csv(SAMPLE, dtype={"patient": str})
    packed = pd.read_csv(tmp_path / "ctich256" / "slices.csv", dtype={"patient": str})
    assert len(packed) == len(src) == info["slices"]
    for (_, a), (_, b) in list(zip(src.iterrows(), packed.iterrows()))[::7]:
        img = read_slice(tmp_path / "ctich256" / b["image"])
        assert img.shape == (256, 256)
        np.testing.assert_array_equal(img, resize_slice(read_slice(SAMPLE.parent / a["image"]), 256))
        np.testing.assert_array_equal(
            read_mask(tmp_path / "ctich256" / b["mask"]), resize_mask(read_mask(SAMPLE.parent / a["mask"]), 256)
        )
    enc = torch.load(tmp_path / "lite0_imagenet_encoder_fp16.pt", weights_only=True)
    assert enc["_conv_stem.weight"].dtype == torch.float16
    assert 0 < info["encoder"]["max_rel_error"] < 1e-3
    assert json.loads((tmp_path / "PACK.json").read_text())["images"]["quality"] == 101


def test_lossy_webp_reports_its_true_error() -> None:
    img = resize_slice(read_slice(SAMPLE.parent / pd.read_csv(SAMPLE)["image"][3]), 256)
    blobs, stats = gpu_pack.encode([img], 80)
    back = cv2.imdecode(np.frombuffer(blobs[0], np.uint8), cv2.IMREAD_GRAYSCALE).astype(int)
    err = np.abs(back - img)
    assert stats["max_abs_levels"] == err.max() > 0
    assert stats["rmse_levels"] == pytest.approx(float(np.sqrt((err**2).mean())), abs=1e-3)
    assert stats["max_abs_hu"] == pytest.approx(err.max() * 120 / 255, abs=0.01)


def test_a_pack_over_the_budget_is_refused_naming_the_folder(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no WebP quality in \[101, 75\] fits 1.0 MiB"):
        gpu_pack.pack(SAMPLE, tmp_path / "p", 256, 1.0, [101, 75], wheels=False)


@pytest.mark.slow
def test_the_tiny_chain_trains_collects_and_evaluates_on_the_native_slices(tmp_path: Path) -> None:
    """Training runs with every package the device's GPU image lacks hidden: it needs nothing
    beyond the image and the carried wheels."""
    env = {
        **os.environ,
        "PY": sys.executable,
        "TINY_DIR": str(tmp_path),
        "TRAIN_PY": f"{sys.executable} tests/gpu_image.py",
    }
    proc = subprocess.run(
        ["bash", "experiments/ctich_cv_gpu.sh", "tiny"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "refused imports:" in (tmp_path / "runs" / "device" / "fold0.log").read_text()
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["fold0.pt", "runs.tar.gz", "train.log"]
    half = torch.load(out / "fold0.pt", weights_only=True)
    assert half["state_dict"]["net.head.weight"].dtype == torch.float16
    with tarfile.open(out / "runs.tar.gz") as tar:
        assert {"lite0_unet_fold0/config.yaml", "lite0_unet_fold0/metrics.json"} <= set(tar.getnames())
    run = tmp_path / "runs" / "cv_lite0_unet" / "lite0_unet_fold0"
    full = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    w = full["state_dict"]["net.head.weight"]
    assert w.dtype == torch.float32 and torch.equal(w, half["state_dict"]["net.head.weight"].float())
    cfg = (run / "config.yaml").read_text()
    assert f"path: {SAMPLE}" in cfg and "device_manifest:" in cfg
    oof = pd.read_csv(run / "oof_patients.csv", dtype={"patient_id": str})
    split = json.loads((run / "split.json").read_text())
    assert sorted(oof["patient_id"]) == sorted(split["split"]["test"])
    assert (tmp_path / "report" / "table1_oof.md").is_file()
