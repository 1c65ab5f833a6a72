"""Agreement statistics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from hemato.metrics.agreement import bland_altman, bootstrap_ci, icc_2_1, paired_wilcoxon, pearson_r


def test_bland_altman_by_hand() -> None:
    ba = bland_altman([10, 12, 14, 20], [9, 12, 15, 17])  # differences 1, 0, -1, 3
    assert ba["bias"] == pytest.approx(0.75)
    sd = np.std([1, 0, -1, 3], ddof=1)
    assert ba["loa_low"] == pytest.approx(0.75 - 1.96 * sd)
    assert ba["loa_high"] == pytest.approx(0.75 + 1.96 * sd)


def test_icc_2_1_by_hand() -> None:
    # Shrout & Fleiss style two-rater example computed by hand:
    x = np.array([[9, 2], [6, 1], [8, 4], [7, 1], [10, 5], [6, 2]], float)
    n, k = x.shape
    g = x.mean()
    msr = k * ((x.mean(1) - g) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(0) - g) ** 2).sum() / (k - 1)
    mse = ((x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + g) ** 2).sum() / ((n - 1) * (k - 1))
    expected = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    assert icc_2_1(x[:, 0], x[:, 1]) == pytest.approx(expected)
    assert expected < 0.3  # a big constant offset: poor absolute agreement
    v = np.array([1.0, 5.0, 9.0, 20.0])
    assert icc_2_1(v, v) == pytest.approx(1.0)
    assert icc_2_1(v + 0.1 * np.array([1, -1, 1, -1]), v) > 0.99


def test_pearson_and_bootstrap() -> None:
    a = np.arange(10.0)
    assert pearson_r(a, 2 * a + 1) == pytest.approx(1.0)
    lo, hi = bootstrap_ci(np.full(20, 3.0))
    assert lo == pytest.approx(3.0) and hi == pytest.approx(3.0)
    rng = np.random.default_rng(0)
    x = rng.normal(5, 1, 200)
    lo, hi = bootstrap_ci(x)
    assert lo < x.mean() < hi and hi - lo < 0.5
    # paired resampling for an RMSE
    p, t = x + 1.0, x
    lo, hi = bootstrap_ci((p, t), lambda a, b: float(np.sqrt(np.mean((a - b) ** 2))))
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)


def test_paired_wilcoxon() -> None:
    a = np.linspace(0.7, 0.9, 15)
    r = paired_wilcoxon(a + 0.05, a)
    assert r["p_value"] < 0.001 and r["n"] == 15
    assert np.isnan(paired_wilcoxon(a, a)["p_value"])
