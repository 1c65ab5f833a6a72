"""Whole-scan inference: head box, slice skipping, cropping equivalence, threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hemato.data.phantom import PhantomConfig, generate_patient
from hemato.inference import find_head, physical_cores, predict_probabilities, set_threads, torch_forward


class LocalNet(nn.Module):
    """A 3x3 conv: each output pixel sees only its 3x3 neighbourhood (no global context),
    so cropping must not change the output away from the crop's border."""

    size_divisor = 16

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.fill_(-4.0)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += len(x)
        return self.conv(x)


def _patient():
    for i in range(20):
        p = generate_patient(PhantomConfig(seed=3, image_size=128, min_slices=20, max_slices=20), i)
        if p.mask.any():
            return p
    raise AssertionError("no phantom patient with a bleed")


@pytest.fixture(scope="module")
def scan_and_mask() -> tuple[np.ndarray, np.ndarray]:
    p = _patient()
    blank = np.zeros((2, 128, 128), np.uint8)
    blank[:, 5, 5] = 200  # an isolated noise pixel is not head
    empty = np.zeros((2, 128, 128), bool)
    return np.concatenate([blank, p.image, blank]), np.concatenate([empty, p.mask, empty])


@pytest.fixture(scope="module")
def scan(scan_and_mask) -> np.ndarray:
    return scan_and_mask[0]


def test_find_head_boxes_skull_and_bleed_and_flags_empty_slices(scan_and_mask) -> None:
    scan, mask = scan_and_mask
    box = find_head(scan)
    assert box is not None
    assert box.has_head.tolist() == [False] * 2 + [True] * 20 + [False] * 2
    inside = np.zeros(scan.shape[1:], bool)
    inside[box.y0 : box.y1, box.x0 : box.x1] = True
    assert mask.any() and not (mask & ~inside).any()  # every hematoma voxel is in the box
    skull = scan >= 250
    assert (skull & inside).sum() >= 0.99 * skull.sum()  # the skull too (thin streaks aside)
    assert inside.mean() < 0.8  # air around the head is cut
    assert find_head(np.zeros((3, 64, 64), np.uint8)) is None


def test_crop_equals_full_frame_inside_the_head_and_skips_empty_slices(scan: np.ndarray) -> None:
    net = LocalNet()
    full = predict_probabilities(net, scan, 128)
    assert net.calls == len(scan)
    net.calls = 0
    cropped = predict_probabilities(net, scan, 128, crop=True)
    assert net.calls == 20  # the 4 slices without head never reach the network
    assert np.all(cropped[:2] == 0) and np.all(cropped[-2:] == 0)
    box = find_head(scan)
    inner = (slice(2, -2), slice(box.y0, box.y1), slice(box.x0, box.x1))
    np.testing.assert_allclose(cropped[inner], full[inner], atol=1e-6)


def test_crop_keeps_the_training_scale_on_a_resized_grid(scan: np.ndarray) -> None:
    # native 128 -> network 64: the crop is taken on the resized grid, a multiple of 16
    net = LocalNet()
    sizes = []
    fwd = torch_forward(net)

    def spy(x: torch.Tensor) -> torch.Tensor:
        sizes.append(tuple(x.shape[-2:]))
        return fwd(x)

    spy.size_divisor = 16
    out = predict_probabilities(spy, scan, 64, crop=True)
    assert out.shape == scan.shape
    assert all(h % 16 == 0 and w % 16 == 0 and h <= 64 and w <= 64 for h, w in sizes)
    full = predict_probabilities(net, scan, 64)
    box = find_head(scan)
    inner = (slice(2, -2), slice(box.y0 + 8, box.y1 - 8), slice(box.x0 + 8, box.x1 - 8))
    np.testing.assert_allclose(out[inner], full[inner], atol=1e-5)


def test_crop_needs_a_size_flexible_network(scan: np.ndarray) -> None:
    with pytest.raises(ValueError, match="size_divisor"):
        predict_probabilities(lambda x: x, scan, 128, crop=True)


def test_channels_last_gives_the_same_probabilities(scan: np.ndarray) -> None:
    from hemato.models.registry import build_model

    torch.manual_seed(0)
    net = build_model("unet", base_channels=4)
    a = predict_probabilities(net, scan[:6], 64)
    b = predict_probabilities(net, scan[:6], 64, channels_last=True)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_threads_default_to_physical_cores() -> None:
    old = torch.get_num_threads()
    try:
        assert set_threads() == physical_cores() == torch.get_num_threads()
        assert set_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(old)
