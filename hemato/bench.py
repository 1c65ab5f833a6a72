"""Benchmarks that print figures (never assertions): ``python -m hemato.bench`` / ``make bench``.

For every model at one input size and width (default 256 px, width 16, the CPU profile's
scale) it measures, each model in its own subprocess so peak memory is its own:

* parameters and forward GFLOP per slice (counted with ``torch.utils.flop_counter``);
* inference slices/s (batched, ``inference_mode``) in NCHW and channels_last, and the
  achieved GFLOP/s of the faster one;
* latency of one 30-slice 512x512 scan (phantom head) through ``predict_probabilities``:
  plain (full frame, NCHW) and fast (head crop + skipped empty slices + channels_last + BN
  folded into the convolutions), and
  through onnxruntime (full frame);
* training slices/s (forward + backward + RMSprop step, fp32) in NCHW and channels_last;
* peak memory (CPU: the subprocess's peak RSS; GPU: ``torch.cuda.max_memory_allocated``);
* utilisation = achieved FLOP/s / the machine's theoretical fp32 peak, printed with its
  derivation (cores x clock x FLOP/cycle from the SIMD width and FMA units), beside the best
  rate measured in the same run for large single convolutions (a practical ceiling).

The project's plain U-Net (``unet``) of the same size is the reference row: every model's
speed is also given as a ratio to it. ``--paper`` adds inference of the paper-size networks
(512 px, width 64). Results go to the screen (table) and to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hemato.inference import cpu_flags, physical_cores, set_threads, torch_forward

REFERENCE = "unet"


# ------------------------------------------------------------------------ machine peak
def gemm_rate(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n x n matrix product (oneDNN/MKL run close to the cores' real
    peak: a measured lower bound of it, at the clock the cores actually run under load)."""
    a = torch.rand(n, n).to(dtype)
    b = torch.rand(n, n).to(dtype)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def calibrated_peak(peak: dict[str, Any], measure: bool = True) -> dict[str, Any]:
    """The fp32 peak used for utilisation: the derivation from the nominal clock, or the
    measured fp32 GEMM rate where that is higher (the cores then run above the nominal clock,
    and the GEMM is a lower bound of the real peak), so no utilisation exceeds 100 %. Adds a
    bf16 peak on CPUs with native bf16: AVX512-BF16 does 2x the fp32 FLOP/cycle, AMX-BF16
    16x (1024 per cycle per core); again at least the measured bf16 GEMM."""
    from hemato.precision import native_bf16

    out = dict(peak)
    derived = peak["peak_gflops"]
    flags = cpu_flags()
    if measure:
        g32 = gemm_rate(torch.float32)
        out["gemm_fp32_gflops"] = g32
        if g32 > derived:
            ghz = g32 / (peak["cores"] * peak["flop_per_cycle"])
            out["peak_gflops"] = g32
            out["derivation"] = (
                f"{peak['derivation']}; the measured fp32 GEMM ran {g32:.0f} GFLOP/s, above it (the cores run at >= {ghz:.2f} GHz "
                f"under load, not the nominal {peak['ghz']:.2f}): peak = {g32:.0f} GFLOP/s (measured lower bound)"
            )
        else:
            out["derivation"] = (
                f"{peak['derivation']} (fp32 GEMM measured {g32:.0f} GFLOP/s = {100 * g32 / derived:.0f} % of it)"
            )
    if native_bf16(flags):
        factor = 16 if "amx_bf16" in flags else 2
        d16 = derived * factor
        out["bf16_peak_gflops"] = d16
        how = f"{'AMX-BF16' if factor == 16 else 'AVX512-BF16'}: {factor} x the fp32 derivation = {d16:.0f} GFLOP/s"
        if measure:
            g16 = gemm_rate(torch.bfloat16)
            out["gemm_bf16_gflops"] = g16
            if g16 > d16:
                out["bf16_peak_gflops"] = g16
                how += f"; measured bf16 GEMM {g16:.0f} GFLOP/s is higher: peak = {g16:.0f} (measured lower bound)"
            else:
                how += f" (bf16 GEMM measured {g16:.0f} GFLOP/s)"
        out["bf16_derivation"] = how
    return out


def cpu_peak(
    ghz: float | None = None, fma_units: int | None = None, cpuinfo: str | None = None, cores: int | None = None
) -> dict[str, Any]:
    """Theoretical fp32 peak of this CPU: cores x clock x FLOP/cycle, with its derivation.

    FLOP/cycle = SIMD fp32 lanes x 2 (fused multiply-add) x FMA units per core. The lanes
    come from the CPU flags (AVX-512: 16, AVX2: 8, SSE: 4); the number of FMA units is not
    visible in the flags: 2 is assumed (Zen 2-4, Haswell and later client cores, Xeon
    Gold/Platinum), override it with ``--fma-units``. The clock is the nominal one the
    kernel reports (``cpu MHz`` in /proc/cpuinfo, or the model name's "@ x GHz"): turbo can
    make the real peak higher, AVX-512 licence clocks lower.
    """
    if cpuinfo is None:
        cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    info = cpuinfo
    flags = cpu_flags(info)
    model = (re.search(r"^model name\s*:\s*(.*)$", info, re.M) or [None, platform.processor()])[1]
    if ghz is None:
        m = re.search(r"@\s*([\d.]+)\s*GHz", model or "")
        mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M)
        ghz = float(m.group(1)) if m else (float(mhz.group(1)) / 1000 if mhz else float("nan"))
    if "avx512f" in flags:
        isa, lanes = "AVX-512", 16
    elif "avx2" in flags:
        isa, lanes = "AVX2", 8
    elif "avx" in flags:
        isa, lanes = "AVX", 8
    else:
        isa, lanes = "SSE", 4
    has_fma = "fma" in flags or "avx512f" in flags
    units = fma_units if fma_units is not None else 2
    per_cycle = lanes * (2 if has_fma else 1) * units
    cores = cores or physical_cores()
    peak = cores * ghz * per_cycle
    how = (
        f"{cores} physical cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle "
        f"({isa}: {lanes} fp32 lanes x {2 if has_fma else 1} ({'FMA' if has_fma else 'no FMA'}) x {units} FMA units"
        f"{'' if fma_units is not None else ' (assumed)'}) = {peak:.0f} GFLOP/s"
    )
    return {
        "cpu": model,
        "isa": isa,
        "cores": cores,
        "ghz": ghz,
        "flop_per_cycle": per_cycle,
        "peak_gflops": peak,
        "derivation": how,
    }


# ------------------------------------------------------------------------ measurements
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
        r["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
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


# ------------------------------------------------------------------------ driver
def _run_child(args: list[str]) -> dict[str, Any]:
    """One model in a fresh interpreter (its own peak memory); returns its JSON line."""
    proc = subprocess.run([sys.executable, "-m", "hemato.bench", "--child", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
