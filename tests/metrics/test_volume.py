"""Planimetric volume: a digital ellipsoid against 4/3 pi abc; geometry is validated."""

from __future__ import annotations

import numpy as np
import pytest

from hemato.metrics.volume import mae, planimetric_volume_ml, rmse, slice_areas_mm2, volume_from_areas_ml


def ellipsoid(a: float, b: float, c: float, spacing: tuple[float, float], thickness: float) -> np.ndarray:
    """Voxel mask of an ellipsoid with semi-axes (a, b, c) mm (x, y, z), voxel centres inside."""
    nz, ny, nx = int(2 * c / thickness) + 4, int(2 * b / spacing[0]) + 4, int(2 * a / spacing[1]) + 4
    z = (np.arange(nz) - (nz - 1) / 2) * thickness
    y = (np.arange(ny) - (ny - 1) / 2) * spacing[0]
    x = (np.arange(nx) - (nx - 1) / 2) * spacing[1]
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    return (xx / a) ** 2 + (yy / b) ** 2 + (zz / c) ** 2 <= 1


@pytest.mark.parametrize("axes", [(20.0, 15.0, 25.0), (30.0, 22.0, 18.0)])
def test_ellipsoid_volume_within_one_percent(axes) -> None:
    spacing, h = (0.45, 0.45), 1.0
    mask = ellipsoid(*axes, spacing, h)
    true_ml = 4 / 3 * np.pi * np.prod(axes) / 1000
    assert planimetric_volume_ml(mask, spacing, h) == pytest.approx(true_ml, rel=0.01)


def test_areas_and_units() -> None:
    mask = np.zeros((2, 10, 10), bool)
    mask[0, :4, :5] = True  # 20 px
    areas = slice_areas_mm2(mask, (0.5, 0.8))
    assert areas.tolist() == pytest.approx([20 * 0.4, 0.0])
    assert volume_from_areas_ml(areas, 5.0) == pytest.approx(8.0 * 5.0 / 1000)


@pytest.mark.parametrize("spacing", [(0.0, 0.5), (-1, 1), (float("nan"), 1.0), (1.0,)])
def test_bad_spacing_is_refused(spacing) -> None:
    with pytest.raises(ValueError, match="spacing"):
        planimetric_volume_ml(np.ones((1, 2, 2), bool), spacing, 5.0)


def test_bad_thickness_is_refused() -> None:
    with pytest.raises(ValueError, match="thickness"):
        planimetric_volume_ml(np.ones((1, 2, 2), bool), (1.0, 1.0), 0.0)


def test_rmse_mae() -> None:
    assert rmse([1, 2, 3], [1, 2, 7]) == pytest.approx(np.sqrt(16 / 3))
    assert mae([1, 2, 3], [2, 2, 7]) == pytest.approx(5 / 3)


# ---------------------------------------------------------------- ABC/2
from hemato.metrics.volume import abc2, feret_ab_mm  # noqa: E402


def test_feret_of_a_rectangle() -> None:
    m = np.zeros((40, 60), bool)
    m[10:20, 10:50] = True  # 10 x 40 px
    a, b, _ = feret_ab_mm(m, (0.5, 0.5))
    assert a == pytest.approx(np.hypot(10, 40) * 0.5, rel=1e-6)  # the diagonal is the longest
    m2 = np.zeros((40, 60), bool)
    rr, cc = np.mgrid[:40, :60]
    m2[((rr - 20) / 8) ** 2 + ((cc - 30) / 20) ** 2 <= 1] = True  # ellipse 2a=40, 2b=16 px
    a, b, u = feret_ab_mm(m2, (1.0, 1.0))
    assert a == pytest.approx(41, abs=1.5) and b == pytest.approx(17, abs=1.5)
    assert abs(u[1]) > 0.99  # A lies along the columns


def test_abc2_of_an_ellipsoid_matches_its_volume() -> None:
    # ABC/2 = 4abc for an ellipsoid; the true volume is 4/3 pi abc (ratio pi/3 ~ 1.047)
    spacing, h = (0.45, 0.45), 1.0
    mask = ellipsoid(25.0, 18.0, 20.0, spacing, h)
    r = abc2(mask, spacing, h)
    true = planimetric_volume_ml(mask, spacing, h)
    assert r["A_mm"] == pytest.approx(50, rel=0.03) and r["B_mm"] == pytest.approx(36, rel=0.03)
    assert r["C_mm"] == pytest.approx(40, abs=2 * h)
    assert r["volume_ml"] == pytest.approx(true, rel=0.08)


def test_abc2_of_a_crescent_uses_the_chord_inside_it() -> None:
    # a subdural-like crescent: B is its thickness (the longest chord INSIDE it perpendicular
    # to A), not the width of its bounding shape, which doubled the old ABC/2
    rr, cc = np.mgrid[:200, :200]
    outer = (rr - 100) ** 2 + (cc - 100) ** 2 <= 80**2
    inner = (rr - 100) ** 2 + (cc - 112) ** 2 <= 78**2
    crescent = outer & ~inner & (cc < 100)
    mask = np.stack([crescent] * 8)
    spacing, h = (0.5, 0.5), 5.0
    r = abc2(mask, spacing, h)
    _, caliper_width, _ = feret_ab_mm(crescent, spacing)  # the old B
    assert r["B_mm"] < caliper_width / 2
    assert 0.5 < r["volume_ml"] / planimetric_volume_ml(mask, spacing, h) < 1.5


def test_longest_perpendicular_chord_of_an_annulus() -> None:
    # every chord perpendicular to a diameter that stays inside a ring of radii R > r is at
    # most the tangent to the inner circle: 2 sqrt(R^2 - r^2)
    from hemato.metrics.volume import longest_perpendicular_chord_mm

    rr, cc = np.mgrid[:121, :121]
    d2 = (rr - 60) ** 2 + (cc - 60) ** 2
    ring = (d2 <= 50**2) & (d2 > 30**2)
    b = longest_perpendicular_chord_mm(ring, (0.5, 0.5), np.array([1.0, 0.0]))
    assert b == pytest.approx(2 * np.sqrt(50**2 - 30**2) * 0.5, abs=1.0)


def test_abc2_is_per_bleed_and_summed() -> None:
    spacing, h = (0.5, 0.5), 5.0
    one = ellipsoid(10.0, 8.0, 10.0, spacing, h)  # (Z, H, W) centred
    z, hh, ww = one.shape
    two = np.zeros((z + 4, hh, 3 * ww), bool)
    two[:z, :, :ww] = one  # bleed 1
    two[4:, :, 2 * ww :] = one  # bleed 2, other slices, far to the side
    alone = abc2(one, spacing, h)
    both = abc2(two, spacing, h)
    assert both["n_bleeds"] == 2 and both["volume_ml"] == pytest.approx(2 * alone["volume_ml"], rel=1e-6)
    # C is each bleed's own extent, not the slices of both together
    assert [b["C_mm"] for b in both["bleeds"]] == [alone["C_mm"]] * 2
    # the old whole-mask A spanned both bleeds: A would have been > 2 x the bleed's A
    assert both["A_mm"] == pytest.approx(alone["A_mm"])


def test_abc2_drops_specks_below_the_stated_size() -> None:
    spacing, h = (0.5, 0.5), 5.0
    m = ellipsoid(10.0, 8.0, 10.0, spacing, h)
    base = abc2(m, spacing, h)
    specks = m.copy()
    for k in range(0, specks.shape[2] - 2, 6):  # 1-voxel specks: 0.00125 ml each
        specks[0, 0, k] = True
    r = abc2(specks, spacing, h)
    assert r["dropped_specks"] > 3 and r["n_bleeds"] == 1 and r["volume_ml"] == pytest.approx(base["volume_ml"])


def test_abc2_kothari_weighting_counts_small_slices_less() -> None:
    spacing, h = (0.5, 0.5), 5.0
    m = np.zeros((3, 60, 60), bool)
    m[0, 10:50, 10:50] = True  # full
    m[1, 20:40, 20:40] = True  # 25 % of the largest -> 0.5
    m[2, 28:32, 28:32] = True  # 1 % -> 0
    assert abc2(m, spacing, h)["C_mm"] == 15.0
    assert abc2(m, spacing, h, kothari=True)["C_mm"] == pytest.approx(7.5)


def test_abc2_empty_and_bad_input() -> None:
    assert abc2(np.zeros((3, 8, 8), bool), (1, 1), 5)["volume_ml"] == 0.0
    with pytest.raises(ValueError):
        abc2(np.zeros((8, 8), bool), (1, 1), 5)
