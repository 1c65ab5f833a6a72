"""Reusable network blocks (MONAI-style ``blocks`` apart from whole ``nets``).

All blocks take and return ``(B, C, H, W)`` float tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """3x3 (by default) convolution, batch norm, ReLU. Keeps H, W."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two ConvBNReLU: the U-Net convolution block. (B, in, H, W) -> (B, out, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, mid_ch: int | None = None) -> None:
        mid = mid_ch or out_ch
        super().__init__(ConvBNReLU(in_ch, mid), ConvBNReLU(mid, out_ch))


class ResidualBlock(nn.Module):
    """Basic residual block (He et al. 2016): two 3x3 conv-BN, identity or 1x1 projection.

    (B, in, H, W) -> (B, out, H, W).
    """

    bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))  # conv -> BN applied in sequence (fold_batchnorm)

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module
        if in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ChannelAttention(nn.Module):
    """CBAM channel attention (Woo et al. 2018): x * sigmoid(MLP(avgpool) + MLP(maxpool)).

    The pooled descriptors are global, so this gate sees the whole map.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one MLP call on both descriptors stacked along the batch; max pooling (not amax),
        # whose backward scatters through indices instead of comparing the whole map
        b = x.shape[0]
        desc = torch.cat([F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)], dim=0)
        out = self.mlp(desc)
        return x * torch.sigmoid(out[:b] + out[b:])


class SpatialAttention(nn.Module):
    """CBAM spatial attention: x * sigmoid(conv7x7([mean_c(x), max_c(x)])). Local (7x7)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        desc = torch.cat([x.mean(dim=1, keepdim=True), x.max(dim=1, keepdim=True).values], dim=1)
        return x * torch.sigmoid(self.conv(desc))


class PositionalEncoding2D(nn.Module):
    """Fixed 2D sinusoidal positional encoding (Vaswani et al.; DETR's 2D form).

    Half of the channels encode the row, half the column, so each location of an
    (H, W) map gets a unique absolute code. Works for any H, W (no size is baked in).
    Returns a (1, C, H, W) tensor to be ADDED to the feature map.
    """

    def __init__(self, channels: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if channels % 4 != 0:
            raise ValueError(f"PositionalEncoding2D needs channels divisible by 4, got {channels}")
        self.channels = channels
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        quarter = c // 4
        dim_t = self.temperature ** (torch.arange(quarter, device=x.device, dtype=torch.float32) / quarter)
        ys = torch.arange(h, device=x.device, dtype=torch.float32)[:, None] / dim_t  # (H, q)
        xs = torch.arange(w, device=x.device, dtype=torch.float32)[:, None] / dim_t  # (W, q)
        pe_y = torch.cat([ys.sin(), ys.cos()], dim=1).T[:, :, None].expand(-1, h, w)
        pe_x = torch.cat([xs.sin(), xs.cos()], dim=1).T[:, None, :].expand(-1, h, w)
        return torch.cat([pe_y, pe_x], dim=0)[None].to(x.dtype)


class MultiHeadSelfAttention2D(nn.Module):
    """Multi-head self-attention over all H*W positions of a feature map (the paper's SA).

    X' = X + PE (positional encoding ADDED); tokens = flatten(X') (B, H*W, C);
    Q, K, V = tokens W_q, tokens W_k, tokens W_v (equal sizes, ``num_heads`` heads);
    A = softmax(Q K^T / sqrt(d_k)) V, reshaped back to (B, C, H, W) = Y.
    ``torch.nn.MultiheadAttention`` holds W_q, W_k, W_v and the output projection.
    Output = norm(X + Y) (residual form, so an untrained module starts near identity).
    (B, C, H, W) -> (B, C, H, W); every output position depends on every input position.
    """

    def __init__(self, channels: int, num_heads: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.pos = PositionalEncoding2D(channels)
        self.attn = nn.MultiheadAttention(channels, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = (x + self.pos(x)).flatten(2).transpose(1, 2)  # (B, HW, C)
        y, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        y = y.transpose(1, 2).reshape(b, c, h, w)
        return self.norm(x + y)


class SkipAttention(nn.Module):
    """Channel attention then spatial attention, in series (CBAM), each switchable."""

    def __init__(self, channels: int, ca: bool = True, spa: bool = True, reduction: int = 16) -> None:
        super().__init__()
        self.ca = ChannelAttention(channels, reduction) if ca else nn.Identity()
        self.spa = SpatialAttention() if spa else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spa(self.ca(x))


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights (C, C, k, k) that make a ConvTranspose2d a bilinear upsampler (FCN init)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt = 1 - torch.abs(og - center) / factor
    kernel = filt[:, None] * filt[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    for i in range(channels):
        weight[i, i] = kernel
    return weight


def init_weights(module: nn.Module) -> None:
    """He (fan-out) init for convolutions, unit BN: the usual from-scratch initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """An inference copy of ``net`` with every BatchNorm2d folded into the conv (or conv subclass,
    e.g. a "same"-padding one) before it.

    Folds adjacent (Conv2d, BatchNorm2d) children of ``nn.Sequential`` containers and the
    pairs a module lists in ``bn_pairs``; each fold uses torch's ``fuse_conv_bn_eval`` (the BN
    becomes ``nn.Identity``). Same outputs up to float rounding, ~10 % less inference time
    (BN is a memory-bound pass over every feature map). Eval mode only.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = copy.deepcopy(net).eval()
    for parent in list(net.modules()):
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            pairs = list(zip(names, names[1:]))
        else:
            pairs = list(getattr(parent, "bn_pairs", ()))
        for a, b in pairs:
            conv, bn = parent._modules.get(a), parent._modules.get(b)
            if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
                parent._modules[a] = fuse_conv_bn_eval(conv, bn)
                parent._modules[b] = nn.Identity()
    return net


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def check_input_size(size: int, divisor: int) -> None:
    """Raise a clear error when a network cannot take ``size``-pixel inputs."""
    if size % divisor != 0 or size <= 0:
        raise ValueError(f"input size {size} must be a positive multiple of {divisor}")


def check_input(x: torch.Tensor, divisor: int) -> None:
    """:func:`check_input_size` on both sides of a (B, C, H, W) input."""
    check_input_size(x.shape[-1], divisor)
    check_input_size(x.shape[-2], divisor)


def encode(x: torch.Tensor, encoders: nn.ModuleList, pool: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A U-Net encoder: each stage's output kept as a skip, then pooled; returns the deepest
    pooled map and the skips (shallowest first)."""
    skips = []
    for enc in encoders:
        x = enc(x)
        skips.append(x)
        x = pool(x)
    return x, skips


__all__ = [
    "ConvBNReLU",
    "DoubleConv",
    "ResidualBlock",
    "ChannelAttention",
    "SpatialAttention",
    "PositionalEncoding2D",
    "MultiHeadSelfAttention2D",
    "SkipAttention",
    "bilinear_kernel",
    "init_weights",
    "count_parameters",
    "check_input",
    "check_input",
    "check_input_size",
    "encode",
    "encode",
]
