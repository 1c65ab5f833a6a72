"""SegNet baseline (Badrinarayanan, Kendall, Cipolla 2017): unpooling with pooling indices.

Encoder = VGG-16-BN's 13 convs (stages 2, 2, 3, 3, 3; channels b, 2b, 4b, 8b, 8b), each
stage max-pooled with its argmax indices kept; decoder mirrors it, each stage starting with
``MaxUnpool2d`` at the stored indices (no learned upsampling, no skip concatenation);
3x3 conv head -> logits.

=======  ============
base      parameters
=======  ============
64        29,471,489
16         1,845,185
=======  ============
"""

from __future__ import annotations

import torch
from torch import nn

from hemato.models.blocks import ConvBNReLU, check_input, init_weights
from hemato.models.registry import register

STAGES = (2, 2, 3, 3, 3)


@register("segnet", label="SegNet", order=1, paper=True)
class SegNet(nn.Module):
    """(B, in_channels, H, W) -> logits (B, out_channels, H, W); H, W multiples of 32."""

    size_divisor = 32

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base_channels: int = 64) -> None:
        super().__init__()
        b = base_channels
        widths = [b, 2 * b, 4 * b, 8 * b, 8 * b]
        self.encoders = nn.ModuleList()
        prev = in_channels
        for w, n in zip(widths, STAGES):
            self.encoders.append(nn.Sequential(*[ConvBNReLU(prev if i == 0 else w, w) for i in range(n)]))
            prev = w
        self.decoders = nn.ModuleList()
        # decoder stage s mirrors encoder stage s: w_s -> ... -> w_{s-1} (b for the first)
        for s in reversed(range(5)):
            w, n = widths[s], STAGES[s]
            out = widths[s - 1] if s > 0 else b
            layers = [ConvBNReLU(w, w) for _ in range(n - 1)] + [ConvBNReLU(w, out)]
            self.decoders.append(nn.Sequential(*layers))
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        self.head = nn.Conv2d(b, out_channels, 3, padding=1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.size_divisor)
        indices = []
        for enc in self.encoders:
            x, idx = self.pool(enc(x))
            indices.append(idx)
        # H, W are multiples of 32, so every unpooled size is exactly 2x (no output_size
        # needed; passing one breaks ONNX tracing)
        for dec, idx in zip(self.decoders, reversed(indices)):
            x = dec(self._unpool(x, idx))
        return self.head(x)

    def _unpool(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """2x max-unpooling at the pooling indices. While tracing for ONNX export the same
        operation is written as a scatter (ScatterElements in the graph): torch's max_unpool
        fails to trace its own output-size check."""
        if not torch.jit.is_tracing():
            return self.unpool(x, idx)
        b, c, h, w = x.shape
        out = x.new_zeros(b, c, 4 * h * w)
        return out.scatter(2, idx.flatten(2), x.flatten(2)).view(b, c, 2 * h, 2 * w)
