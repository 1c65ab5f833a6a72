"""Automatic subgroup tags on synthetic shapes (and the phantom's own tags)."""

from __future__ import annotations

import numpy as np
import pytest

from hemato.metrics.subgroups import SubgroupThresholds, mean_solidity, skull_mask, tag_patient

TH = SubgroupThresholds()


def _head(size: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rr, cc = np.mgrid[:size, :size]
    r = np.hypot(rr - size / 2, cc - size / 2)
    img = np.where(r < 90, 130, 0).astype(np.uint8)
    img[(r >= 80) & (r < 90)] = 255  # skull ring
    img[(np.hypot(rr - 100, cc - 130) < 3)] = 255  # a small calcification inside the brain
    return img, rr, cc


def test_ellipse_is_regular_and_lobes_are_irregular() -> None:
    _, rr, cc = _head()
    ellipse = ((rr - 100) / 20) ** 2 + ((cc - 100) / 30) ** 2 <= 1
    assert mean_solidity(ellipse[None]) > 0.95
    lobes = np.hypot(rr - 100, cc - 100) < 8  # a centre with four lobes: one connected blob
    for dy, dx in [(-13, 0), (13, 0), (0, -13), (0, 13)]:
        lobes |= np.hypot(rr - 100 - dy, cc - 100 - dx) < 8
    assert mean_solidity(lobes[None]) < TH.solidity_below


def test_skull_excludes_small_calcifications() -> None:
    img, rr, cc = _head()
    sk = skull_mask(img, TH)
    assert sk[100, 15] and not sk[100, 130]


@pytest.mark.parametrize("centre_col,near", [(100, False), (25, True)])
def test_near_skull_distance(centre_col: int, near: bool) -> None:
    img, rr, cc = _head()
    blob = np.hypot(rr - 100, cc - centre_col) < 8
    tags = tag_patient(img[None], blob[None], (0.5, 0.5), TH)
    assert tags["near_skull_auto"] is near
    if near:
        # ring inner edge at radius 80 px; blob edge at 100-25+8 = 83 px from centre...
        assert tags["skull_distance_mm"] < TH.near_skull_mm
    else:
        assert tags["skull_distance_mm"] == pytest.approx((80 - 8) * 0.5, abs=1.0)


def test_phantom_tags_agree_with_automatic_tags() -> None:
    from hemato.data.phantom import PhantomConfig, generate_patient

    cfg = PhantomConfig(n_patients=30, image_size=256, seed=0)
    agree_irr, agree_near, n = 0, 0, 0
    for i in range(14):
        p = generate_patient(cfg, i)
        if not p.mask.any():
            continue
        t = tag_patient(p.image, p.mask, p.spacing_mm, TH)
        n += 1
        agree_irr += t["irregular_auto"] == p.tags["irregular"]
        agree_near += t["near_skull_auto"] == p.tags["near_skull"]
    assert agree_near / n >= 0.8 and agree_irr / n >= 0.7, (agree_near, agree_irr, n)
