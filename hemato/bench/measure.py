"""The measurements: FLOPs, inference and scan latency, training and data rates, per network."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hemato.inference import peak_rss_mb, torch_forward


def _timeit(fn, min_seconds: float, min_iters: int = 2, warmup: int = 1) -> float:
    """Seconds per call of ``fn`` (median of at least ``min_iters`` calls after warm-up)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def count_flops(net: torch.nn.Module, size: int, device: str = "cpu") -> int:
    """Forward FLOP for one (1, 1, size, size) slice (a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 1, size, size, device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        net.eval()(x)
    return int(fc.get_total_flops())


def conv_ceiling(device: str = "cpu", seconds: float = 1.0) -> dict[str, Any]:
    """Best GFLOP/s of large single 3x3 convolutions (NCHW and channels_last), the
    practical ceiling the networks' convolutions can reach on this machine."""
    shapes = [(4, 64, 256), (4, 128, 128), (4, 256, 64)]  # (batch, channels, size)
    results = []
    for b, c, s in shapes:
        conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).to(device).eval()
        flop = 2 * b * c * c * 9 * s * s
        for fmt in ("nchw", "channels_last"):
            x = torch.randn(b, c, s, s, device=device)
            m = conv
            if fmt == "channels_last":
                x, m = x.contiguous(memory_format=torch.channels_last), conv.to(memory_format=torch.channels_last)

            def run(m=m, x=x) -> None:
                with torch.inference_mode():
                    m(x)
                _sync(device)

            sec = _timeit(run, seconds)
            results.append({"shape": f"{b}x{c}x{s}x{s}, 3x3 {c}->{c}", "format": fmt, "gflops": flop / sec / 1e9})
    best = max(results, key=lambda r: r["gflops"])
    return {"best_gflops": best["gflops"], "best": best, "all": results}


def phantom_scans(n: int = 1, n_slices: int = 30, size: int = 512, seed: int = 2026) -> list[Any]:
    """``n`` phantom head scans (n_slices, size, size) with a bleed, from a seed no training
    cohort uses (the default cohorts use seed 42), as PhantomPatient objects."""
    from hemato.data.phantom import PhantomConfig, generate_patient

    cfg = PhantomConfig(seed=seed, image_size=size, min_slices=n_slices, max_slices=n_slices)
    out, i = [], 0
    while len(out) < n and i < 50 * n:
        p = generate_patient(cfg, i)
        if p.mask.any():
            out.append(p)
        i += 1
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def bench_model(
    name: str,
    size: int,
    width: int,
    batch: int,
    train_batch: int,
    device: str,
    seconds: float,
    scans: list[Any],
    checkpoint: str | None = None,
    train: bool = True,
    onnx: bool = True,
) -> dict[str, Any]:
    """All figures for one network (runs in the current process)."""
    from hemato.inference import predict_probabilities
    from hemato.models.blocks import count_parameters
    from hemato.models.registry import build_model

    torch.manual_seed(0)
    if checkpoint:
        from hemato.weights.load import load_model

        loaded = load_model(checkpoint)
        net, size = loaded.net, loaded.input_size
        kw = loaded.identity["model"]
        name, width = kw["name"], kw.get("base_channels", width)
    else:
        net = build_model(name, base_channels=width)
    net = net.to(device).eval()
    r: dict[str, Any] = {
        "model": name,
        "size": size,
        "width": width,
        "params": count_parameters(net),
        "checkpoint": checkpoint,
    }
    flop = count_flops(net, size, device)
    r["gflop_per_slice"] = flop / 1e9

    # inference throughput: NCHW, channels_last, channels_last with batch norm folded
    from hemato.models.blocks import fold_batchnorm

    x = torch.rand(batch, 1, size, size, device=device)
    variants = {"nchw": (net, x), "channels_last": (net, x), "cl+foldbn": (fold_batchnorm(net), x)}
    for fmt, (m, xx) in variants.items():
        if fmt != "nchw":
            m = m.to(memory_format=torch.channels_last)
            xx = xx.contiguous(memory_format=torch.channels_last)
        else:
            m = m.to(memory_format=torch.contiguous_format)

        def infer(m=m, xx=xx) -> None:
            with torch.inference_mode():
                m(xx)
            _sync(device)

        r[f"infer_slices_s_{fmt}"] = batch / _timeit(infer, seconds)
    net = net.to(memory_format=torch.contiguous_format)
    best_fmt = max(variants, key=lambda f: r[f"infer_slices_s_{f}"])
    r["infer_format"] = best_fmt
    r["infer_slices_s"] = r[f"infer_slices_s_{best_fmt}"]
    r["infer_gflops"] = r["infer_slices_s"] * r["gflop_per_slice"]
    if bf16_available(device):  # the same fastest path (channels-last, folded BN) under bf16 autocast
        fwd16 = torch_forward(net, device, channels_last=True, fold_bn=True, bf16=True)
        r["infer_slices_s_bf16"] = batch / _timeit(lambda: fwd16(x), seconds)
        r["infer_gflops_bf16"] = r["infer_slices_s_bf16"] * r["gflop_per_slice"]

    # one 30-slice 512x512 scan, end to end through predict_probabilities
    if scans:
        images = scans[0].image
        plain_fn = lambda im: predict_probabilities(net, im, size, batch_size=batch, device=device)  # noqa: E731
        fast_fwd = torch_forward(
            net, device, channels_last=True, fold_bn=True
        )  # folded once, as hemato.predict's load_model does
        fast_fn = lambda im: predict_probabilities(fast_fwd, im, size, batch_size=batch, crop=True)  # noqa: E731
        r["scan_shape"] = list(images.shape)
        r["scan_s_plain"] = _timeit(lambda: plain_fn(images), 0.0, min_iters=1)
        r["scan_s_fast"] = _timeit(lambda: fast_fn(images), 0.0, min_iters=1)
        paths = {"plain": plain_fn, "fast": fast_fn}
        if onnx and device == "cpu":
            ort_fwd = _onnx_forward(net, size)
            r["scan_s_onnx"] = _timeit(
                lambda: predict_probabilities(ort_fwd, images, size, batch_size=batch), 0.0, min_iters=1
            )
            paths["onnx"] = lambda im: predict_probabilities(ort_fwd, im, size, batch_size=batch)
        # accuracy of every path on the scans: against the plain path, and (trained
        # checkpoint) against the truth; volumes in ml at the phantom's exact geometry
        acc: dict[str, list[float]] = {}
        for p in scans:
            voxel_ml = p.spacing_mm[0] * p.spacing_mm[1] * p.thickness_mm / 1000.0
            masks = {k: fn(p.image) > 0.5 for k, fn in paths.items()}
            for k, m in masks.items():
                if k != "plain":
                    acc.setdefault(f"{k}_vs_plain_dice", []).append(_dice(m, masks["plain"]))
                    acc.setdefault(f"{k}_vs_plain_abs_ml", []).append(
                        abs(float(m.sum() - masks["plain"].sum())) * voxel_ml
                    )
                if checkpoint:
                    acc.setdefault(f"dice_{k}", []).append(_dice(m, p.mask))
                    acc.setdefault(f"abs_volume_error_ml_{k}", []).append(abs(float(m.sum() - p.mask.sum())) * voxel_ml)
        r["accuracy_scans"] = len(scans)
        if checkpoint:  # the whole report: read a NIfTI, segment (default fast path), write everything
            r["report_s"] = _report_seconds(checkpoint, scans[0])
        for k, v in acc.items():
            r[k] = float(np.max(v)) if k.endswith("_abs_ml") else float(np.mean(v))
        net = net.to(memory_format=torch.contiguous_format)

    # training throughput: fp32 in both memory formats, bf16 autocast in the faster one
    if train:
        for fmt in ("nchw", "channels_last"):
            r[f"train_slices_s_{fmt}"] = train_rate(
                name, width, size, train_batch, device, seconds, fmt == "channels_last"
            )
        r["train_format"] = max(("nchw", "channels_last"), key=lambda f: r[f"train_slices_s_{f}"])
        r["train_slices_s"] = r[f"train_slices_s_{r['train_format']}"]
        r["train_gflops"] = r["train_slices_s"] * 3 * r["gflop_per_slice"]  # backward ~ 2x forward
        if bf16_available(device):
            cl = r["train_format"] == "channels_last"
            r["train_slices_s_bf16"] = train_rate(name, width, size, train_batch, device, seconds, cl, bf16=True)
            r["train_gflops_bf16"] = r["train_slices_s_bf16"] * 3 * r["gflop_per_slice"]
    if device.startswith("cuda"):
        r["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        r["peak_memory_mb"] = peak_rss_mb()  # this child process's own peak
    return r


def bf16_available(device: str) -> bool:
    """bf16 figures are measured on GPUs and on CPUs with native bf16 (elsewhere autocast
    emulates it, ~10x slower, and hemato never chooses it)."""
    from hemato.precision import native_bf16

    return device.startswith("cuda") or native_bf16()


def train_rate(
    name: str,
    width: int,
    size: int,
    batch: int,
    device: str,
    seconds: float,
    channels_last: bool,
    bf16: bool = False,
    in_channels: int = 1,
    model_kwargs: dict[str, Any] | None = None,
) -> float:
    """Training slices/s of a fresh network: forward (bf16 autocast if asked), BCE + soft
    Dice in fp32, backward, optimizer step, on random (batch, in_channels, size, size) inputs."""
    from hemato.models.registry import build_model
    from hemato.tasks.segmentation import soft_dice_loss

    kw = {"base_channels": width, "in_channels": in_channels, **(model_kwargs or {})}
    m = build_model(name, **kw).to(device).train()
    x = torch.rand(batch, in_channels, size, size, device=device)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.95).float()
    if channels_last:
        m, x = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    dev_type = torch.device(device).type

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            logits = m(x)
        logits = logits.float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + soft_dice_loss(logits, y)
        loss.backward()
        opt.step()
        _sync(device)

    return batch / _timeit(step, seconds)


def recipe_rate(experiment: str, device: str, seconds: float) -> dict[str, Any]:
    """Training slices/s of an experiment profile's own network, patch size, batch and input
    channels (e.g. ``ctich``: 2.5D ours at width 16 on 128 px patches, batch 16) in fp32 and,
    where available, bf16; and the wall clock of one run's training steps at each rate."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from hemato.run import CONF_DIR
    from hemato.tasks.segmentation import channels_last_wins

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}"])
    model = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"}
    name = model.pop("name")
    width, in_ch = model.pop("base_channels"), model.pop("in_channels")
    model.pop("out_channels", None)
    crop = int((cfg.data.get("augment") or {}).get("crop", 0) or 0)
    size = crop or int(cfg.data.input_size)
    batch = int(cfg.data.batch_size)
    cl = channels_last_wins("CUDAAccelerator" if device.startswith("cuda") else "CPUAccelerator")
    per_run = int(cfg.trainer.max_epochs) * int(cfg.data.samples_per_epoch or 0)
    out: dict[str, Any] = {
        "experiment": experiment,
        "model": name,
        "width": width,
        "in_channels": in_ch,
        "size": size,
        "batch": batch,
        "channels_last": cl,
        "train_slices_per_run": per_run,
    }
    precisions = ["fp32"] + (["bf16"] if bf16_available(device) else [])
    for prec in precisions:
        rate = train_rate(name, width, size, batch, device, seconds, cl, prec == "bf16", in_ch, model)
        out[f"train_slices_s_{prec}"] = rate
        if per_run:
            out[f"train_minutes_{prec}"] = per_run / rate / 60
    return out


def _report_seconds(checkpoint: str, patient: Any) -> float:
    """Wall clock of ``hemato.predict.predict`` on the scan saved as NIfTI (HU, 1 mm^3 voxels
    scaled to the phantom's spacing): reading, inference, volume, ABC/2, mask and overlays."""
    import nibabel as nib

    from hemato.predict import predict

    with tempfile.TemporaryDirectory() as tmp:
        # windowed 0..255 back to HU of the default brain window (level 40, width 120); the
        # black around the head back to air (-1000 HU), as a real scan has (predict checks it)
        hu = patient.image.astype(np.float32) / 255.0 * 120.0 - 20.0
        hu[patient.image == 0] = -1000.0
        data = np.transpose(hu[:, ::-1, ::-1], (2, 1, 0))  # (x, y, z) in RAS, like read_nifti expects
        sr, sc = patient.spacing_mm
        nib.save(
            nib.Nifti1Image(np.ascontiguousarray(data), np.diag([sc, sr, patient.thickness_mm, 1.0])),
            f"{tmp}/scan.nii.gz",
        )
        t = time.perf_counter()
        predict(checkpoint, f"{tmp}/scan.nii.gz", f"{tmp}/report")
        return time.perf_counter() - t


def _onnx_forward(net: torch.nn.Module, size: int) -> Any:
    """The network exported to ONNX (fixed size x size, dynamic batch) run by onnxruntime."""
    from hemato.export import export_network
    from hemato.inference import onnx_forward, onnx_session

    with tempfile.TemporaryDirectory() as tmp:
        export_network(net, size, Path(tmp) / "net.onnx")
        return onnx_forward(onnx_session(Path(tmp) / "net.onnx"))


def data_rate(size: int, batch: int, seconds: float = 2.0) -> dict[str, Any]:
    """Training loader rate (slices/s) of the real data path: phantom slices cached as
    resized uint8, albumentations augmentation (flips, A.Affine shifts), foreground
    oversampling, collate; the loader's own process (num_workers=0, the CPU default)."""
    from hemato.data.datamodule import HematomaDataModule
    from hemato.data.phantom import PhantomSource

    src = PhantomSource(n_patients=4, image_size=256, seed=5, min_slices=20, max_slices=22)
    dm = HematomaDataModule(
        src,
        input_size=size,
        batch_size=batch,
        test_fraction=0.25,
        val_fraction=0.0,
        augment={"hflip": 0.5, "vflip": 0.5, "shift": 0.1, "shift_p": 0.5},
        foreground_oversample=0.5,
        samples_per_epoch=100 * batch,
    )
    dm.setup("fit")
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for b in dm.train_dataloader():
            n += len(b["image"])
            if time.perf_counter() - start >= seconds:
                break
    return {"loader_slices_s": n / (time.perf_counter() - start), "size": size, "batch": batch, "num_workers": 0}
