"""The one inference engine: contract, threshold, component filter, shared by all callers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hemato.engine import (
    Contract,
    filter_components,
    parse_overrides,
    postprocess,
    scan_counts,
    segment,
    window_to_hu,
)
from tests.skull import skull_slice


def test_contract_round_trip_and_validation() -> None:
    c = Contract(input_size=256, min_component_px=16, orientation="any", trained_on="ct-ich")
    assert Contract.from_dict(c.as_dict()) == c
    with pytest.raises(ValueError, match="unknown contract fields"):
        Contract.from_dict({**c.as_dict(), "spacing": 1.0})
    for bad in (
        {"input_size": 250},
        {"input_size": 256, "threshold": 1.0},
        {"input_size": 256, "orientation": "sideways"},
        {"input_size": 256, "window_width": 0},
        {"input_size": 256, "min_component_peak": 1.0},
    ):
        with pytest.raises(ValueError):
            Contract(**bad)


def test_contract_overrides_from_the_command_line() -> None:
    o = parse_overrides(["tta=true", "min_component_hu=55", "min_component_hu=null", "trained_on=ct ich"])
    assert o == {"tta": True, "min_component_hu": None, "trained_on": "ct ich"}
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_overrides(["tta"])
    with pytest.raises(ValueError, match="unknown contract fields"):
        Contract.from_dict({"input_size": 64, **parse_overrides(["spacing=1"])})


def test_small_3d_components_are_dropped_large_kept() -> None:
    m = np.zeros((4, 64, 64), bool)
    m[1:3, 5:15, 5:15] = True  # 200 voxels across two slices: one 3D component
    m[2, 30:33, 30:33] = True  # 9 voxels
    probs = m.astype(np.float32)

    def drop(min_px: int, input_size: int = 64) -> np.ndarray:  # input 64 = native grid
        return filter_components(m, probs, None, Contract(input_size=input_size, min_component_px=min_px))

    out = drop(20)
    assert out[1:3, 5:15, 5:15].all() and not out[2, 30:33, 30:33].any()
    assert drop(0).sum() == m.sum()
    # voxel counts are scaled to the network grid: 9 native voxels x 4 = 36 >= 20 survive
    assert drop(20, input_size=128).sum() == m.sum()


def test_postprocess_uses_the_contract_threshold_and_network_grid_size() -> None:
    probs = np.zeros((2, 64, 64), np.float32)
    probs[0, 0:8, 0:8] = 0.9  # 64 native px = 16 network px at input_size 32
    probs[1, 40:44, 40:44] = 0.9  # 16 native px = 4 network px
    probs[1, 20:30, 20:30] = 0.4  # below the threshold
    c = Contract(input_size=32, threshold=0.5, min_component_px=10)
    m = postprocess(probs, c)
    assert m[0].sum() == 64 and m[1].sum() == 0
    assert postprocess(probs, Contract(input_size=32, threshold=0.3)).sum() == 64 + 16 + 100


def test_component_rules_drop_unsure_and_non_blood_components() -> None:
    """Three 3D components: a sure, blood-dense one (kept); one the network is never sure of
    (dropped by the peak rule); a sure one on brain-density pixels (dropped by the HU rule)."""
    probs = np.zeros((3, 40, 40), np.float32)
    img = np.full((3, 40, 40), 128, np.uint8)  # 128 of 255 in the 40/120 window = 40.2 HU
    probs[0:2, 2:8, 2:8] = 0.97
    img[0:2, 2:8, 2:8] = 181  # 65.2 HU: acute blood
    probs[1, 20:26, 20:26] = 0.7
    img[1, 20:26, 20:26] = 181
    probs[2, 30:36, 30:36] = 0.99  # brain density under it
    con = Contract(input_size=64, min_component_peak=0.9, min_component_hu=50.0)
    assert window_to_hu(181, con) == pytest.approx(65.18, abs=0.01)
    m = postprocess(probs, con, img)
    assert m.sum() == 72 and m[0:2, 2:8, 2:8].all()
    only_peak = postprocess(probs, Contract(input_size=64, min_component_peak=0.9))
    assert only_peak.sum() == 72 + 36 and not only_peak[1, 20:26, 20:26].any()
    assert postprocess(probs, Contract(input_size=64)).sum() == 72 + 36 + 36
    with pytest.raises(ValueError, match="needs the windowed images"):
        postprocess(probs, con)


def test_segment_runs_the_network_and_applies_the_contract() -> None:
    class Bright(torch.nn.Module):  # logit > 0 where the input is bright: a known "network"
        size_divisor = 32

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - 0.5) * 40.0

    img = np.zeros((3, 64, 64), np.uint8)
    img[:, 8:56, 8:56] = 60  # head
    img[1, 20:36, 20:36] = 250  # bleed on one slice
    img[2, 50:52, 50:52] = 250  # a speck
    probs, mask = segment(Bright(), img, Contract(input_size=64, min_component_px=10))
    assert probs.shape == img.shape and mask.dtype == bool
    assert mask[1, 20:36, 20:36].all() and mask.sum() == 256  # speck dropped
    c = scan_counts(mask, img == 250)
    assert c["inter"].tolist() == [0, 256, 0] and c["gt"].tolist() == [0, 256, 4]


def test_confidence_flags_a_threshold_dependent_mask() -> None:
    from hemato.engine import confidence

    sure = np.zeros((2, 32, 32), np.float32)
    sure[0, 8:16, 8:16] = 0.95
    c = confidence(sure, Contract(input_size=32))
    assert not c["unsure"] and c["relative_spread"] == 0.0 and c["bleeds"][0]["voxels"] == 64
    vague = sure.copy()
    vague[0, 4:24, 4:24] = np.where(vague[0, 4:24, 4:24] > 0, 0.95, 0.4)  # a wide halo just below 0.5
    c = confidence(vague, Contract(input_size=32))
    assert c["unsure"] and c["relative_spread"] == pytest.approx((400 - 64) / 64)
    faint = np.full((1, 32, 32), 0.35, np.float32)  # nothing at 0.5, everything at 0.3
    assert confidence(faint, Contract(input_size=32))["unsure"]


def test_context_gives_the_network_the_same_neighbour_channels_as_training() -> None:
    """2.5D: the engine feeds slice z with slices z-1, z, z+1 (ends repeated), exactly the
    channels the training dataset gives the same slice."""
    from hemato.data.datamodule import SliceDataset
    from hemato.data.records import VolumeRecord
    from hemato.inference import neighbour_index

    assert neighbour_index(0, 4, 1) == [0, 0, 1] and neighbour_index(3, 4, 1) == [2, 3, 3]
    assert neighbour_index(2, 5, 2) == [0, 1, 2, 3, 4] and neighbour_index(1, 3, 0) == [1]

    class Recorder(torch.nn.Module):
        size_divisor = 32

        def __init__(self) -> None:
            super().__init__()
            self.seen: list[torch.Tensor] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen.append(x.clone())
            return (x[:, 2:3] - x[:, 0:1]) * 40.0  # positive where the next slice is brighter

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (4, 64, 64), dtype=np.uint8)
    net = Recorder()
    c = Contract(input_size=64, context=1, crop_to_head=False)
    probs, _ = segment(net, img, c, batch_size=8)
    x = torch.cat(net.seen)
    assert x.shape == (4, 3, 64, 64)
    ds = SliceDataset([VolumeRecord("p", img, None, None, None)], [0], 64, context=1)
    for z in range(4):
        assert torch.equal(ds[z]["image"], x[z])  # training and prediction: the same channels
    expected = 1 / (1 + np.exp(-(img[[1, 2, 3, 3]].astype(float) - img[[0, 0, 1, 2]]) / 255 * 40))
    assert np.allclose(probs, expected, atol=1e-5)
    with pytest.raises(ValueError, match="context"):
        Contract(input_size=64, context=-1)


def test_intracranial_rule_drops_scalp_predictions_and_keeps_bleeds_against_the_inner_table() -> None:
    from hemato.engine import candidates, intracranial_region

    images = np.stack([skull_slice(128), skull_slice(128, gap=40)])
    probs = np.zeros((2, 128, 128), np.float32)
    yy, xx = np.mgrid[:128, :128]
    r = np.hypot(yy - 63.5, xx - 63.5)
    scalp = (r >= 55) & (r < 59) & (xx < 64)  # outside the skull
    subdural = (r >= 44) & (r < 48) & (xx >= 64)  # a crescent against the inner table
    for k in (0, 1):
        probs[k][scalp | subdural] = 0.9
    c = Contract(input_size=128, intracranial=True)
    mask = postprocess(probs, c, images)
    assert mask[0][subdural].all() and not mask[0][scalp].any()
    # no closed skull ring (skull base): the slice is left as predicted
    assert mask[1][subdural].all() and mask[1][scalp].all()
    # off by default; the rule needs the images it judges
    assert postprocess(probs, Contract(input_size=128)).sum() == (probs > 0.5).sum()
    with pytest.raises(ValueError, match="intracranial"):
        postprocess(probs, c)
    region = intracranial_region(images, c)
    assert region[1].all() and not region[0][0, 0] and region[0][64, 64]
    assert np.array_equal(candidates(probs, c, images), (probs > 0.5) & region)


def test_confidence_is_read_before_the_bleed_rules() -> None:
    """A bleed the rules keep at the threshold only (too small at 0.7, merged into a dim
    region at 0.3 whose mean HU fails the rule) is unsure: the spread is read on the
    probability map, not on each threshold's rule-filtered mask (issue 27, item 9)."""
    from hemato.engine import confidence

    probs = np.zeros((3, 64, 64), np.float32)
    images = np.full((3, 64, 64), 128, np.uint8)  # ~40 HU: brain
    probs[1, 20:40, 20:40] = 0.6  # the bleed: bright, p just over 0.5
    images[1, 20:40, 20:40] = 200  # ~74 HU
    probs[1, 10:50, 10:50] = np.where(probs[1, 10:50, 10:50] > 0, 0.6, 0.4)  # a dim halo at 0.4
    con = Contract(input_size=64, min_component_px=100, min_component_hu=55.0)
    c = confidence(probs, con, images=images)
    assert c["voxels_at"] == {"0.3": 1600, "0.5": 400, "0.7": 0}
    assert c["unsure"] and c["relative_spread"] == pytest.approx(4.0)
