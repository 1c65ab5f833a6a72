"""Whole-scan inference shared by the run's evaluation export and prediction:
(Z, H, W) uint8 slices -> (Z, H, W) hematoma probabilities on the native grid."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hemato.data.transforms import resize_slice


@torch.inference_mode()
def predict_probabilities(
    net: torch.nn.Module,
    images: np.ndarray,
    input_size: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    tta: bool = False,
) -> np.ndarray:
    """Probabilities (Z, H, W) float32 for a stack of windowed uint8 slices (Z, H, W).

    Each slice is resized to ``input_size`` (area interpolation, as in training), passed
    through ``net`` (logits), sigmoid, and resized back to (H, W) bilinearly. ``tta``
    averages the identity with horizontal and vertical flips.
    """
    if images.ndim != 3:
        raise ValueError(f"images must be (Z, H, W), got {images.shape}")
    net = net.eval().to(device)
    z, h, w = images.shape
    out = np.empty((z, h, w), dtype=np.float32)
    for start in range(0, z, batch_size):
        chunk = images[start : start + batch_size]
        x = np.stack([resize_slice(s, input_size) for s in chunk]).astype(np.float32) / 255.0
        xt = torch.from_numpy(x)[:, None].to(device)
        p = torch.sigmoid(net(xt).float())
        if tta:
            p = p + torch.sigmoid(net(xt.flip(-1)).float()).flip(-1)
            p = p + torch.sigmoid(net(xt.flip(-2)).float()).flip(-2)
            p = p / 3.0
        if (h, w) != (input_size, input_size):
            p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
        out[start : start + len(chunk)] = p[:, 0].cpu().numpy()
    return out
