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


def test_abc2_overestimates_a_crescent() -> None:
    # a subdural-like crescent: the band between two offset circles, over several slices
    rr, cc = np.mgrid[:200, :200]
    outer = (rr - 100) ** 2 + (cc - 100) ** 2 <= 80**2
    inner = (rr - 100) ** 2 + (cc - 112) ** 2 <= 78**2
    crescent = outer & ~inner & (cc < 100)
    mask = np.stack([crescent] * 8)
    spacing, h = (0.5, 0.5), 5.0
    assert abc2(mask, spacing, h)["volume_ml"] > 2.0 * planimetric_volume_ml(mask, spacing, h)


def test_abc2_empty_and_bad_input() -> None:
    assert abc2(np.zeros((3, 8, 8), bool), (1, 1), 5)["volume_ml"] == 0.0
    with pytest.raises(ValueError):
        abc2(np.zeros((8, 8), bool), (1, 1), 5)
