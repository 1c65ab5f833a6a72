"""U-Net baseline (Ronneberger et al. 2015), with 'same' padding and batch norm.

4 x [double 3x3 conv, 2x2 max-pool], channels b..8b; bottleneck double conv 16b;
4 x [2x2 transposed conv, concat skip, double conv]; 1x1 conv head -> logits.

=======  ============
base      parameters
=======  ============
64        31,036,481
16         1,942,289
=======  ============
"""

from __future__ import annotations

import torch
from torch import nn

from hemato.models.blocks import DoubleConv, check_input, encode, init_weights
from hemato.models.registry import register


@register("unet", label="U-Net", order=2, paper=True)
class UNet(nn.Module):
    """(B, in_channels, H, W) -> logits (B, out_channels, H, W); H, W multiples of 16."""

    size_divisor = 16

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base_channels: int = 64) -> None:
        super().__init__()
        b = base_channels
        widths = [b, 2 * b, 4 * b, 8 * b]
        self.encoders = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.encoders.append(DoubleConv(prev, w))
            prev = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[-1], 16 * b)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        cur = 16 * b
        for w in reversed(widths):
            self.ups.append(nn.ConvTranspose2d(cur, w, 2, stride=2))
            self.decoders.append(DoubleConv(2 * w, w))
            cur = w
        self.head = nn.Conv2d(b, out_channels, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.size_divisor)
        x, skips = encode(x, self.encoders, self.pool)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)
