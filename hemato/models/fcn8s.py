"""FCN-8s baseline (Long, Shelhamer, Darrell 2015) with a VGG-16 encoder trained from scratch.

VGG-16 stages of 2, 2, 3, 3, 3 3x3 convs (channels b, 2b, 4b, 8b, 8b; paper-size b = 64),
each followed by 2x2 max-pool; fc6 (7x7 conv) and fc7 (1x1 conv) with ``fc_channels``
(4096 in VGG-16; default 64*b) and dropout; scores from fc7, pool4 and pool3 fused by
learned 2x, 2x and 8x transposed convolutions initialised as bilinear upsamplers.
Batch norm after every conv (VGG-16-BN) because no ImageNet weights can be loaded here and
plain VGG trains poorly from scratch; ``batch_norm=False`` gives the original layers.

=======  ============
base      parameters
=======  ============
64       134,268,771  (fc 4096)
16         8,396,211  (fc 1024)
=======  ============
"""

from __future__ import annotations

import torch
from torch import nn

from hemato.models.blocks import bilinear_kernel, check_input, init_weights
from hemato.models.registry import register

VGG16_STAGES = (2, 2, 3, 3, 3)


def vgg_stage(in_ch: int, out_ch: int, n_convs: int, batch_norm: bool) -> nn.Sequential:
    """``n_convs`` 3x3 conv (+BN) + ReLU layers; the first maps in_ch -> out_ch."""
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers.append(nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@register("fcn8s", label="FCN8s", order=0, paper=True)
class FCN8s(nn.Module):
    """(B, in_channels, H, W) -> logits (B, out_channels, H, W); H, W multiples of 32."""

    size_divisor = 32

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        fc_channels: int | None = None,
        batch_norm: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        b = base_channels
        widths = [b, 2 * b, 4 * b, 8 * b, 8 * b]
        fc = fc_channels or 64 * b
        self.stages = nn.ModuleList()
        prev = in_channels
        for w, n in zip(widths, VGG16_STAGES):
            self.stages.append(vgg_stage(prev, w, n, batch_norm))
            prev = w
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Sequential(
            nn.Conv2d(widths[-1], fc, 7, padding=3),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(fc, fc, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        n = out_channels
        self.score_fr = nn.Conv2d(fc, n, 1)
        self.score_pool4 = nn.Conv2d(widths[3], n, 1)
        self.score_pool3 = nn.Conv2d(widths[2], n, 1)
        self.upscore2 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=1, bias=False)
        self.upscore8 = nn.ConvTranspose2d(n, n, 16, stride=8, padding=4, bias=False)
        init_weights(self)
        for m in (self.score_fr, self.score_pool4, self.score_pool3):
            nn.init.zeros_(m.weight)  # as in the reference implementation
            nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.upscore2.weight.copy_(bilinear_kernel(n, 4))
            self.upscore_pool4.weight.copy_(bilinear_kernel(n, 4))
            self.upscore8.weight.copy_(bilinear_kernel(n, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.size_divisor)
        feats = []
        for stage in self.stages:
            x = self.pool(stage(x))
            feats.append(x)
        pool3, pool4, pool5 = feats[2], feats[3], feats[4]
        score = self.upscore2(self.score_fr(self.fc(pool5)))  # 1/16
        score = self.upscore_pool4(score + self.score_pool4(pool4))  # 1/8
        return self.upscore8(score + self.score_pool3(pool3))  # 1/1
