"""Agreement statistics for volumes and paired model comparison (what clinicians read).

* Bland-Altman: bias = mean(measured - reference), 95 % limits = bias +- 1.96 SD.
* ICC(2,1): two-way random effects, absolute agreement, single measurement (McGraw & Wong
  1996, Shrout & Fleiss ICC(2,1)), so a constant offset lowers it. Written here because the
  formula is short and scipy has none; checked against a hand-computed example in the tests.
* Pearson r (scipy.stats.pearsonr).
* Bootstrap 95 % CIs over patients (scipy.stats.bootstrap, percentile).
* Paired Wilcoxon signed-rank test between two models (scipy.stats.wilcoxon).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats


def bland_altman(measured: Sequence[float], reference: Sequence[float]) -> dict[str, float]:
    """Bias and 95 % limits of agreement of ``measured - reference`` (same unit)."""
    m, r = np.asarray(measured, float), np.asarray(reference, float)
    d = m - r
    if d.size < 2:
        return {
            "bias": float(d.mean()) if d.size else np.nan,
            "sd": np.nan,
            "loa_low": np.nan,
            "loa_high": np.nan,
            "n": int(d.size),
        }
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    return {"bias": bias, "sd": sd, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd, "n": int(d.size)}


def icc_2_1(measured: Sequence[float], reference: Sequence[float]) -> float:
    """ICC(2,1), absolute agreement between two raters (columns) over n subjects (rows)."""
    x = np.stack([np.asarray(measured, float), np.asarray(reference, float)], axis=1)
    n, k = x.shape
    if n < 2:
        return float("nan")
    grand = x.mean()
    ms_r = k * ((x.mean(1) - grand) ** 2).sum() / (n - 1)  # subjects
    ms_c = n * ((x.mean(0) - grand) ** 2).sum() / (k - 1)  # raters
    sse = ((x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + grand) ** 2).sum()
    ms_e = sse / ((n - 1) * (k - 1))
    denom = ms_r + (k - 1) * ms_e + k * (ms_c - ms_e) / n
    return float((ms_r - ms_e) / denom) if denom > 0 else float("nan")


def pearson_r(a: Sequence[float], b: Sequence[float]) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(stats.pearsonr(a, b).statistic)


def bootstrap_ci(
    values: Sequence[float] | tuple[Sequence[float], ...],
    statistic: Callable[..., float] = np.mean,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI over patients. ``values`` is one array, or a tuple of paired
    arrays resampled together (e.g. predicted and true volumes for an RMSE)."""
    data = values if isinstance(values, tuple) else (values,)
    data = tuple(np.asarray(v, float) for v in data)
    keep = np.all([np.isfinite(v) for v in data], axis=0)
    data = tuple(v[keep] for v in data)
    if data[0].size < 2:
        return (float("nan"), float("nan"))
    res = stats.bootstrap(
        data,
        lambda *a: statistic(*a),
        paired=True,
        vectorized=False,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_wilcoxon(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Wilcoxon signed-rank test of paired per-patient values (two-sided)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 2 or np.all(a == b):
        return {"statistic": float("nan"), "p_value": float("nan"), "n": int(a.size)}
    res = stats.wilcoxon(a, b)
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue), "n": int(a.size)}


def cluster_bootstrap_ci(
    groups: Sequence[np.ndarray],
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of a statistic of pooled values when PATIENTS are resampled
    (e.g. a per-slice mean whose slices are grouped by patient). Hand-written: scipy's
    bootstrap has no clustered resampling."""
    groups = [np.asarray(g, float)[np.isfinite(np.asarray(g, float))] for g in groups]
    groups = [g for g in groups if g.size]
    if len(groups) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    stats_ = np.empty(n_resamples)
    for i in range(n_resamples):
        pick = rng.integers(0, len(groups), len(groups))
        stats_[i] = statistic(np.concatenate([groups[j] for j in pick]))
    alpha = (1 - confidence) / 2
    return float(np.quantile(stats_, alpha)), float(np.quantile(stats_, 1 - alpha))
