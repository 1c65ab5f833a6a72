"""Whole-scan inference shared by the run's evaluation export, ``hemato.predict`` and
``hemato.bench``: (Z, H, W) uint8 slices -> (Z, H, W) hematoma probabilities on the native grid.

CPU speed levers (measured by ``python -m hemato.bench``; README "Performance"):

* ``torch.inference_mode`` and batched slices (always);
* ``channels_last`` memory format (faster for CPU inference with oneDNN convolutions);
* batch norm folded into the convolutions (``fold_bn``; ``hemato.predict`` does it);
* ``crop``: the network only sees the head. The scan-wide bounding box of the head (windowed
  value above air, opened to drop noise) is mapped onto the network grid the slices are
  resized to (the scale the network was trained at is kept), padded by a margin and rounded
  up to the network's ``size_divisor``; slices without head are skipped (probability 0).
  Outside the box the windowed image is air, where no hematoma can be.
* threads = physical cores (``set_threads``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from hemato.data.transforms import resize_slice

Forward = Callable[[torch.Tensor], torch.Tensor]  # (B, 1, h, w) float32 in [0, 1] -> logits


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB): Linux's VmHWM of this program image (getrusage's
    ru_maxrss would also count the parent's memory at the fork that started it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for c in cpus:
        sib = Path(f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list")
        try:
            cores.add(sib.read_text().strip())
        except OSError:
            cores.add(str(c))
    return max(1, len(cores))


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (``avx2``, ``avx512f``, ``fma`` ...) from /proc/cpuinfo, or from
    ``cpuinfo`` text; empty where there is none."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    m = re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.M)
    return set(m.group(1).split()) if m else set()


def cpu_model(cpuinfo: str | None = None) -> str:
    """This CPU as /proc/cpuinfo (or ``cpuinfo`` text) names its first processor: model name /
    family / model / stepping (one marketing name covers several generations); else what
    ``platform`` says."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    block = cpuinfo.split("\n\n", 1)[0]
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}
    parts = [fields.get(k, "") for k in ("model name", "cpu family", "model", "stepping")]
    if any(parts):
        return " / ".join(parts)
    import platform

    return platform.processor() or platform.machine()


def set_threads(n: int | None = None) -> int:
    """``torch.set_num_threads(n or physical cores)``; returns the number set."""
    n = int(n) if n else physical_cores()
    torch.set_num_threads(n)
    return n


def torch_forward(
    net: torch.nn.Module,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    fold_bn: bool = False,
    bf16: bool = False,
) -> Forward:
    """A forward function for a torch network (eval mode, inference mode, on ``device``);
    ``fold_bn`` runs a copy with batch norm folded into the convolutions (``fold_batchnorm``);
    ``bf16`` runs it under bf16 autocast (logits returned in fp32)."""
    if fold_bn:
        from hemato.models.blocks import fold_batchnorm

        net = fold_batchnorm(net)
    net = net.eval().to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)

    dev_type = torch.device(device).type

    @torch.inference_mode()
    def fwd(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            return net(x).float().cpu()

    fwd.size_divisor = getattr(net, "size_divisor", 32)  # type: ignore[attr-defined]
    return fwd


def onnx_session(path: str | Path) -> object:
    """An onnxruntime CPU session for an ONNX file, threads = physical cores."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = physical_cores()
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def onnx_forward(sess: object) -> Forward:
    """A forward function running an onnxruntime session on its first input."""
    name = sess.get_inputs()[0].name  # type: ignore[attr-defined]

    def fwd(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sess.run(None, {name: x.numpy().astype(np.float32)})[0])  # type: ignore[attr-defined]

    return fwd


@dataclass(frozen=True)
class HeadBox:
    """Scan-wide head bounding box in native pixels (half-open) and which slices hold head."""

    y0: int
    y1: int
    x0: int
    x1: int
    has_head: np.ndarray  # (Z,) bool


def find_head(images: np.ndarray, level: int = 10, min_fraction: float = 0.002) -> HeadBox | None:
    """Head region of windowed slices (Z, H, W) uint8, or None when no slice holds head.

    A pixel is head when its windowed value exceeds ``level`` (air and fat are 0 in a brain
    window) after a 5x5 opening (drops isolated noise); a slice holds head when at least
    ``min_fraction`` of its pixels do.
    """
    z, h, w = images.shape
    kernel = np.ones((5, 5), np.uint8)
    has = np.zeros(z, dtype=bool)
    rows = np.zeros(h, dtype=bool)
    cols = np.zeros(w, dtype=bool)
    for k in range(z):
        m = cv2.morphologyEx((images[k] > level).astype(np.uint8), cv2.MORPH_OPEN, kernel)
        if m.sum() >= min_fraction * h * w:
            has[k] = True
            rows |= m.any(1).astype(bool)
            cols |= m.any(0).astype(bool)
    if not has.any():
        return None
    ry, rx = np.flatnonzero(rows), np.flatnonzero(cols)
    return HeadBox(int(ry[0]), int(ry[-1]) + 1, int(rx[0]), int(rx[-1]) + 1, has)


BONE = 250  # windowed value (brain window 40/120: > ~98 HU) counted as bone


def intracranial_mask(image: np.ndarray, bone: int = BONE, min_fraction: float = 0.02) -> np.ndarray:
    """(H, W) uint8 brain-window slice -> (H, W) bool intracranial cavity: the inside of the
    skull ring (bone >= ``bone``, closed over 2-pixel gaps and filled) minus the bone. All
    False when no closed ring encloses at least ``min_fraction`` of the slice (skull base,
    vertex, a slice without head)."""
    ring = image >= bone
    if not ring.any():
        return np.zeros(image.shape, bool)
    ring = ndi.binary_closing(ring, structure=np.ones((5, 5), bool), border_value=0)
    inside = ndi.binary_fill_holes(ring) & ~ring & (image < bone)
    if inside.sum() < min_fraction * image.size:
        return np.zeros(image.shape, bool)
    lab, n = ndi.label(inside)
    if n > 1:  # the largest enclosed region: the cranial cavity, not the orbits or sinuses
        sizes = ndi.sum(inside, lab, index=range(1, n + 1))
        inside = lab == 1 + int(np.argmax(sizes))
    return inside


def _grid_range(lo: int, hi: int, native: int, size: int, margin: int, divisor: int) -> tuple[int, int]:
    """Native [lo, hi) -> network-grid [a, b) of a ``size`` grid, with margin, length % divisor == 0."""
    scale = size / native
    a = max(0, math.floor(lo * scale) - margin)
    b = min(size, math.ceil(hi * scale) + margin)
    length = min(size, math.ceil((b - a) / divisor) * divisor)
    a = min(a, size - length)
    return a, a + length


def neighbour_index(z: int, n: int, context: int) -> list[int]:
    """Slice numbers z-context..z+context of a stack of ``n`` slices, clamped to [0, n-1]
    (the end slices repeated): the 2.5D input channels of slice ``z``, in training as in
    prediction."""
    return [min(max(z + d, 0), n - 1) for d in range(-context, context + 1)]


def predict_probabilities(
    net: torch.nn.Module | Forward,
    images: np.ndarray,
    input_size: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    tta: bool = False,
    progress: bool = False,
    crop: bool = False,
    channels_last: bool = False,
    margin: int = 8,
    fold_bn: bool = False,
    context: int = 0,
) -> np.ndarray:
    """Probabilities (Z, H, W) float32 for a stack of windowed uint8 slices (Z, H, W).

    Each slice is resized to ``input_size`` (area interpolation, exactly as in training),
    passed through the network (logits), sigmoid, and resized back to (H, W) bilinearly.
    ``tta`` averages the identity with horizontal and vertical flips. ``crop`` runs the
    network on the head's box only (``margin`` network pixels around it) and skips slices
    without head (module docstring); it needs a network that takes any size that is a
    multiple of its ``size_divisor`` (every hemato torch network; not a fixed-size ONNX).
    ``context`` > 0 feeds each slice with its ``context`` neighbours on each side as
    channels (B, 2 * context + 1, S, S), ends repeated (:func:`neighbour_index`).
    """
    if images.ndim != 3:
        raise ValueError(f"images must be (Z, H, W), got {images.shape}")
    fwd = torch_forward(net, device, channels_last, fold_bn) if isinstance(net, torch.nn.Module) else net
    z, h, w = images.shape
    out = np.zeros((z, h, w), dtype=np.float32)
    todo = np.arange(z)
    ya, yb, xa, xb = 0, input_size, 0, input_size
    if crop:
        divisor = getattr(fwd, "size_divisor", None)
        if divisor is None:
            raise ValueError(
                "crop=True needs a network that accepts any multiple of its size_divisor (a torch network)"
            )
        box = find_head(images)
        if box is None:
            return out  # no head in any slice: nothing to segment
        todo = np.flatnonzero(box.has_head)
        ya, yb = _grid_range(box.y0, box.y1, h, input_size, margin, divisor)
        xa, xb = _grid_range(box.x0, box.x1, w, input_size, margin, divisor)
    starts = range(0, len(todo), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="slices", unit="batch", total=len(starts))
    resized: dict[int, np.ndarray] = {}  # each slice resized once, also when it is a neighbour

    def small(k: int) -> np.ndarray:
        if k not in resized:
            resized[k] = resize_slice(images[k], input_size)[ya:yb, xa:xb]
        return resized[k]

    with torch.inference_mode():
        for start in starts:
            idx = todo[start : start + batch_size]
            full = np.stack([[small(j) for j in neighbour_index(k, z, context)] for k in idx])
            x = torch.from_numpy(full.astype(np.float32) / 255.0)
            p = torch.sigmoid(fwd(x))
            if tta:
                p = (p + torch.sigmoid(fwd(x.flip(-1))).flip(-1) + torch.sigmoid(fwd(x.flip(-2))).flip(-2)) / 3.0
            if p.shape[-2:] != (input_size, input_size):
                canvas = torch.zeros((len(idx), 1, input_size, input_size), dtype=p.dtype)
                canvas[:, :, ya:yb, xa:xb] = p
                p = canvas
            if (h, w) != (input_size, input_size):
                p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
            out[idx] = p[:, 0].numpy()
    return out
