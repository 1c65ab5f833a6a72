"""Table cells from synthetic runs: a dataset reference volume is reported beside the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hemato.report.collect import Run, model_label
from hemato.report.tables import _vol_table, vol_cells


def _run(label: str, pred, true, ref=None) -> Run:
    p = pd.DataFrame(
        {
            "patient_id": [f"P{i}" for i in range(len(pred))],
            "pred_volume_ml": pred,
            "true_volume_ml": true,
            "gt": [1] * len(pred),
        }
    )
    if ref is not None:
        p["reference_volume_ml"] = ref
    return Run(Path("/x"), label, "ours", {}, {}, {}, p, pd.DataFrame())


def test_volume_errors_against_truth_and_reference() -> None:
    run = _run("Ours", [10.0, 22.0, 5.0], [12.0, 20.0, 5.0], ref=[11.0, 25.0, 4.0])
    c = vol_cells(run)
    assert c["rmse"] == pytest.approx(np.sqrt((4 + 4 + 0) / 3)) and c["mae"] == pytest.approx(4 / 3)
    r = vol_cells(run, reference="reference_volume_ml")
    assert r["mae"] == pytest.approx((1 + 3 + 1) / 3)
    t = _vol_table("table2", "t", {"Ours": run}, {"Ours": (4.618, 3.614)})
    assert t.data["ref_mae"].iloc[0] == pytest.approx(5 / 3)
    assert "RMSE / MAE vs dataset reference (ml)" in t.display.columns
    plain = _vol_table("table2", "t", {"Ours": _run("Ours", [1.0, 2.0], [1.0, 2.5])}, {})
    assert "ref_mae" not in plain.data


def test_model_labels() -> None:
    assert model_label({"name": "ours", "sa": True, "ca": True, "spa": True})[0] == "Ours"
    assert model_label({"name": "ours", "sa": True, "ca": False, "spa": False})[0] == "U-Net+SA"
    assert model_label({"name": "ours", "sa": False, "ca": False, "spa": False})[0] == "U-Net (ours, all off)"
    assert model_label({"name": "fcn8s"})[0] == "FCN8s"
