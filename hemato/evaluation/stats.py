"""Statistics of the evaluations: bootstrap CIs, paired tests."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


def bootstrap_ci(
    values: np.ndarray, stat=np.mean, n: int = 2000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat`` over the rows of ``values`` (NaN if empty)."""
    v = np.asarray(values, float)
    if len(v) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n, len(v)))
    boots = np.array([stat(v[i]) for i in idx])
    return float(np.nanpercentile(boots, 100 * alpha / 2)), float(np.nanpercentile(boots, 100 * (1 - alpha / 2)))


def paired_test(a: pd.DataFrame, b: pd.DataFrame, metric: str = "dice", seed: int = 0) -> dict[str, Any]:
    """Paired comparison of two models' per-patient ``metric`` on the patients with bleed
    both were tested on: mean difference a - b, bootstrap 95 % CI, Wilcoxon signed-rank p."""
    m = a[a["gt"] > 0][["patient_id", metric]].merge(
        b[b["gt"] > 0][["patient_id", metric]], on="patient_id", suffixes=("_a", "_b")
    )
    d = (m[f"{metric}_a"] - m[f"{metric}_b"]).to_numpy(float)
    res: dict[str, Any] = {
        "n": len(d),
        "mean_diff": float(d.mean()) if len(d) else math.nan,
        "ci": bootstrap_ci(d, seed=seed),
    }
    res["wilcoxon_p"] = wilcoxon_p(d)
    return res


def wilcoxon_p(d: np.ndarray) -> float:
    """Wilcoxon signed-rank p of paired differences ``d`` (1.0 when all are 0, NaN if undefined)."""
    try:
        return float(stats.wilcoxon(d).pvalue) if len(d) and np.any(d != 0) else 1.0
    except ValueError:
        return math.nan


def mean_ci_t(d: np.ndarray) -> tuple[float, tuple[float, float], float]:
    """Mean, t-based 95 % CI and one-sample t-test p (H0: mean 0) of ``d`` (n >= 2)."""
    m, n = float(d.mean()), len(d)
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n))
    p = float(stats.ttest_1samp(d, 0.0).pvalue) if np.any(d != d[0]) else (1.0 if m == 0 else 0.0)
    return m, (m - half, m + half), p


def fmt_ci(v: float, ci: tuple[float, float] | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f}"
