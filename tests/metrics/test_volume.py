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
