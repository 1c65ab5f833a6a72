"""Whole-scan inference shared by the run's evaluation export and ``hemato.predict``:
(Z, H, W) uint8 slices -> (Z, H, W) hematoma probabilities on the native grid."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from hemato.data.transforms import resize_slice

Forward = Callable[[torch.Tensor], torch.Tensor]  # (B, 1, S, S) float32 in [0, 1] -> logits


def torch_forward(net: torch.nn.Module, device: str | torch.device = "cpu") -> Forward:
    """A forward function for a torch network (eval mode, inference mode, on ``device``)."""
    net = net.eval().to(device)

    @torch.inference_mode()
    def fwd(x: torch.Tensor) -> torch.Tensor:
        return net(x.to(device)).float().cpu()

    return fwd


def predict_probabilities(
    net: torch.nn.Module | Forward,
    images: np.ndarray,
    input_size: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    tta: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """Probabilities (Z, H, W) float32 for a stack of windowed uint8 slices (Z, H, W).

    Each slice is resized to ``input_size`` (area interpolation, exactly as in training),
    passed through the network (logits), sigmoid, and resized back to (H, W) bilinearly.
    ``tta`` averages the identity with horizontal and vertical flips.
    """
    if images.ndim != 3:
        raise ValueError(f"images must be (Z, H, W), got {images.shape}")
    fwd = torch_forward(net, device) if isinstance(net, torch.nn.Module) else net
    z, h, w = images.shape
    out = np.empty((z, h, w), dtype=np.float32)
    starts = range(0, z, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="slices", unit="batch", total=len(starts))
    with torch.inference_mode():
        for start in starts:
            chunk = images[start : start + batch_size]
            x = torch.from_numpy(np.stack([resize_slice(s, input_size) for s in chunk]).astype(np.float32) / 255.0)[:, None]
            p = torch.sigmoid(fwd(x))
            if tta:
                p = (p + torch.sigmoid(fwd(x.flip(-1))).flip(-1) + torch.sigmoid(fwd(x.flip(-2))).flip(-2)) / 3.0
            if (h, w) != (input_size, input_size):
                p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
            out[start : start + len(chunk)] = p[:, 0].numpy()
    return out
