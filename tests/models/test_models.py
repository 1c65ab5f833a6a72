"""Networks: shapes, documented parameter counts, receptive field, ablation switches."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from hemato.models import available, build_model, get, networks
from hemato.models.blocks import (
    ChannelAttention,
    MultiHeadSelfAttention2D,
    PositionalEncoding2D,
    SpatialAttention,
    count_parameters,
)

NAMES = [i.name for i in networks(paper=True)]  # the paper's four; lite0_unet: tests/models/test_lite_unet.py


def test_registry_lists_the_paper_networks_and_the_pretrained_one() -> None:
    assert available() == sorted([*NAMES, "lite0_unet"])
    with pytest.raises(KeyError, match="unknown model 'resnet'"):
        get("resnet")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [64, 128])
def test_output_shape_small(name: str, size: int) -> None:
    net = build_model(name, base_channels=8).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, size, size))
    assert out.shape == (2, 1, size, size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_512(name: str) -> None:
    net = build_model(name, base_channels=4, **({"fc_channels": 32} if name == "fcn8s" else {})).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 1, 512, 512))
    assert out.shape == (1, 1, 512, 512)


def test_ours_bottleneck_is_32x32x512_at_paper_size() -> None:
    net = build_model("ours", base_channels=64).eval()
    seen = {}

    def hook(module, inputs, output) -> None:
        seen["shape"] = tuple(output.shape)

    net.bottleneck.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.randn(1, 1, 512, 512))
    assert seen["shape"] == (1, 512, 32, 32)
    assert isinstance(net.bottleneck, MultiHeadSelfAttention2D)
    widths = [enc.conv1.out_channels for enc in net.encoders]
    assert widths == [64, 128, 256, 512]


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_size_is_a_clear_error(name: str) -> None:
    net = build_model(name, base_channels=4).eval()
    with pytest.raises(ValueError, match="multiple of"):
        net(torch.randn(1, 1, 72, 72))


def _doc_table(name: str) -> list[tuple[str, int, int]]:
    """(label, base, params) rows of the module docstring's parameter table."""
    doc = __import__(f"hemato.models.{name}", fromlist=["x"]).__doc__
    rows = []
    for line in doc.splitlines():
        m = re.match(r"\s*([a-z ,]*?)\s*(\d+)\s+([\d,]+)", line)
        if m:
            rows.append((m.group(1).strip(), int(m.group(2)), int(m.group(3).replace(",", ""))))
    return rows


@pytest.mark.parametrize("name", NAMES)
def test_docstring_parameter_table_is_true(name: str) -> None:
    rows = _doc_table(name)
    assert rows, f"no parameter table in hemato.models.{name}"
    for label, base, params in rows:
        kwargs = {"sa": False, "ca": False, "spa": False} if "all off" in label else {}
        assert count_parameters(build_model(name, base_channels=base, **kwargs)) == params, (label, base)


def _corner_gradient(net: nn.Module, size: int) -> float:
    """|d out[0, 0, 0, 0] / d in[..., -8:, -8:]|: does the top-left output see the far corner?"""
    net.eval()  # batch norm must not couple pixels through batch statistics
    x = torch.randn(1, 1, size, size, requires_grad=True)
    net(x)[0, 0, 0, 0].backward()
    return float(x.grad[..., -8:, -8:].abs().sum())


def test_self_attention_gives_a_global_receptive_field() -> None:
    torch.manual_seed(0)
    # channel attention pools globally, so it is off in both nets: only SA differs
    with_sa = build_model("ours", base_channels=8, sa=True, ca=False, spa=True)
    without = build_model("ours", base_channels=8, sa=False, ca=False, spa=True)
    size = 256  # larger than the convolutional receptive field (~190 px)
    assert _corner_gradient(with_sa, size) > 0.0
    assert _corner_gradient(without, size) == 0.0


def test_positional_encoding_is_added_and_unique() -> None:
    pe = PositionalEncoding2D(16)(torch.zeros(1, 16, 8, 8))[0]
    codes = pe.flatten(1).T  # (64 positions, 16)
    assert torch.cdist(codes, codes).fill_diagonal_(1.0).min() > 1e-3
    # the SA module is not translation-invariant: a shifted input is not a shifted output
    torch.manual_seed(0)
    sa = MultiHeadSelfAttention2D(16, num_heads=4).eval()
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        y = sa(x)
        y_shift = sa(torch.roll(x, 1, dims=3))
    assert not torch.allclose(torch.roll(y, 1, dims=3), y_shift, atol=1e-4)


def _count(net: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in net.modules())


@pytest.mark.parametrize(
    "flags,n_sa,n_ca,n_spa",
    [
        ({"sa": True, "ca": True, "spa": True}, 1, 4, 4),
        ({"sa": True, "ca": False, "spa": False}, 1, 0, 0),
        ({"sa": True, "ca": True, "spa": False}, 1, 4, 0),
        ({"sa": False, "ca": False, "spa": True}, 0, 0, 4),
        ({"sa": False, "ca": False, "spa": False}, 0, 0, 0),
    ],
)
def test_ablation_flags_remove_modules(flags: dict, n_sa: int, n_ca: int, n_spa: int) -> None:
    net = build_model("ours", base_channels=8, **flags)
    assert _count(net, MultiHeadSelfAttention2D) == n_sa
    assert _count(net, nn.MultiheadAttention) == n_sa
    assert _count(net, ChannelAttention) == n_ca
    assert _count(net, SpatialAttention) == n_spa


def test_all_off_is_the_plain_residual_unet() -> None:
    net = build_model("ours", base_channels=8, sa=False, ca=False, spa=False)
    top = {k.split(".")[0] for k in net.state_dict()}
    assert top == {"encoders", "decoders", "head"}
    full = build_model("ours", base_channels=8)
    # same encoder/decoder: every parameter of the plain net exists, same shape, in the full one
    full_sd = full.state_dict()
    for k, v in net.state_dict().items():
        assert full_sd[k].shape == v.shape, k


@pytest.mark.parametrize("name", NAMES)
def test_every_network_exports_to_onnx_and_matches_torch(name: str, tmp_path) -> None:
    import warnings

    import numpy as np
    import onnxruntime as ort

    from hemato.models.registry import build_model

    torch.manual_seed(0)
    net = build_model(name, base_channels=8).eval()
    x = torch.rand(2, 1, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            x[:1],
            str(tmp_path / "m.onnx"),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    out = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"image": x.numpy()}
    )[0]
    with torch.inference_mode():
        ref = net(x).numpy()
    assert out.shape == ref.shape == (2, 1, 64, 64)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_folding_batchnorm_keeps_the_outputs(name: str) -> None:
    from hemato.models.blocks import fold_batchnorm

    torch.manual_seed(0)
    net = build_model(name, base_channels=8)
    for m in net.modules():  # non-trivial running statistics and affine parameters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    net.eval()
    folded = fold_batchnorm(net)
    left = [n for n, m in folded.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert left == (
        ["bottleneck.norm"] if name == "ours" else []
    )  # ours: BN after attention + residual, no conv to fold into
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the original is untouched
    x = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), net(x), atol=1e-4, rtol=1e-4)


def test_the_registry_is_the_one_place_a_network_is_declared() -> None:
    """Labels, table order and the paper's four come from ``@register`` (issue 24)."""
    from hemato.models import info
    from hemato.report.collect import model_label
    from hemato.report.tables import model_order

    assert NAMES == ["fcn8s", "segnet", "unet", "ours"] and "lite0_unet" in available()
    assert model_order() == ["FCN8s", "SegNet", "U-Net", "Ours"]
    assert model_label({"name": "ours"}) == ("Ours", {"sa": True, "ca": True, "spa": True})
    assert model_label({"name": "ours", "sa": False, "ca": False, "spa": False})[0] == "U-Net (ours, all off)"
    assert model_label({"name": "ours", "ca": False, "spa": False})[0] == "U-Net+SA"
    assert model_label({"name": "lite0_unet"}) == ("lite0_unet", {"sa": False, "ca": False, "spa": False})
    assert model_label({"name": "lite0_unet", "sa": True, "ca": True, "spa": True})[0] == "lite0_unet+SA+CA+SPA"
    assert model_label({"name": "unet"}) == ("U-Net", {}) and model_label({"name": "gone"}) == ("gone", {})
    assert info("segnet").switches() == {} and info("lite0_unet").switches() == {"sa": False, "ca": False, "spa": False}
