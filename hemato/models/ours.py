"""The paper's network ("ours"): residual U-Net with self-attention and CBAM skip attention.

Li Y., Yu N. et al., "Cerebral hematoma segmentation and bleeding volume measurement based
on self-attention mechanism" (docs/paper.md, section 2):

* encoder: 4 x [residual block, 2x2 max-pool], channels b, 2b, 4b, 8b (paper b = 64:
  64-128-256-512; a 512x512 slice becomes a 32x32x512 map);
* bottleneck: multi-head self-attention with an ADDED 2D positional encoding (``sa``);
* decoder: 4 x [bilinear x2 upsampling, concat with the attended skip, conv block],
  channels 4b, 2b, b, b;
* skips: channel attention (``ca``) then spatial attention (``spa``), CBAM-style;
* head: 3x3 conv to 1 channel; sigmoid (applied by the task) -> hematoma probability.

With ``sa=ca=spa=False`` the module tree is exactly the plain residual U-Net of the same
encoder/decoder (the ablation baseline of Table 7): the switched-off modules do not exist.

Parameter counts (1 input, 1 output channel, 8 heads):

=============  ======  ============  ============
configuration   base    parameters    at 512x512
=============  ======  ============  ============
ours            64      9,939,657    32x32 bottleneck
ours, all off   64      8,844,097
ours            16         623,865
ours            32       2,488,233
=============  ======  ============  ============
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hemato.models.blocks import (
    DoubleConv,
    MultiHeadSelfAttention2D,
    ResidualBlock,
    SkipAttention,
    check_input,
    encode,
    init_weights,
)
from hemato.models.registry import register


@register("ours", label="Ours", order=3, paper=True, off_label="U-Net (ours, all off)", partial_prefix="U-Net")
class SelfAttentionUNet(nn.Module):
    """(B, in_channels, H, W) -> logits (B, out_channels, H, W); H, W multiples of 16."""

    size_divisor = 16

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        sa: bool = True,
        ca: bool = True,
        spa: bool = True,
        num_heads: int = 8,
        attn_dropout: float = 0.0,
        ca_reduction: int = 16,
    ) -> None:
        super().__init__()
        b = base_channels
        widths = [b, 2 * b, 4 * b, 8 * b]
        self.flags = {"sa": sa, "ca": ca, "spa": spa}
        self.encoders = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.encoders.append(ResidualBlock(prev, w))
            prev = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck: nn.Module = (
            MultiHeadSelfAttention2D(widths[-1], num_heads, attn_dropout) if sa else nn.Identity()
        )
        self.skip_attn = nn.ModuleList()
        if ca or spa:
            for w in widths:
                self.skip_attn.append(SkipAttention(w, ca=ca, spa=spa, reduction=ca_reduction))
        dec_out = [b, b, 2 * b, 4 * b]  # level 1..4
        self.decoders = nn.ModuleList()
        cur = widths[-1]
        for level in reversed(range(4)):
            self.decoders.append(DoubleConv(cur + widths[level], dec_out[level]))
            cur = dec_out[level]
        self.decoders = nn.ModuleList(reversed(list(self.decoders)))  # index = level
        self.head = nn.Conv2d(b, out_channels, 3, padding=1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.size_divisor)
        x, skips = encode(x, self.encoders, self.pool)
        x = self.bottleneck(x)
        for level in reversed(range(4)):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            skip = self.skip_attn[level](skips[level]) if len(self.skip_attn) else skips[level]
            x = self.decoders[level](torch.cat([x, skip], dim=1))
        return self.head(x)
