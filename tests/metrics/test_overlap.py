"""Overlap metrics against hand-computed values; batch accumulation; empty policies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hemato.metrics.overlap import SliceStats, overlap_scores, patient_table, slice_table, summarize


def test_hand_computed_scores() -> None:
    # P = 6 px, G = 4 px, overlap 3 px: Dice = 6/10, IoU = 3/7, Rvd = 2/4
    s = overlap_scores(np.array([3]), np.array([6]), np.array([4]))
    assert s["dice"][0] == pytest.approx(0.6)
    assert s["iou"][0] == pytest.approx(3 / 7)
    assert s["rvd"][0] == pytest.approx(0.5)
    assert s["rvd_signed"][0] == pytest.approx(0.5)
    s = overlap_scores(np.array([2]), np.array([2]), np.array([8]))
    assert s["rvd_signed"][0] == pytest.approx(-0.75) and s["rvd"][0] == pytest.approx(0.75)


def test_empty_truth_policies() -> None:
    inter, pred, gt = np.array([0, 0]), np.array([0, 5]), np.array([0, 0])
    ex = overlap_scores(inter, pred, gt, "exclude")
    assert np.isnan(ex["dice"]).all() and np.isnan(ex["rvd"]).all()
    sc = overlap_scores(inter, pred, gt, "score")
    assert sc["dice"].tolist() == [1.0, 0.0] and sc["iou"].tolist() == [1.0, 0.0]
    assert np.isnan(sc["rvd"]).all()
    with pytest.raises(ValueError):
        overlap_scores(inter, pred, gt, "ignore")


def _stats(rows):
    m = SliceStats()
    cols = list(zip(*rows))
    m.update(*[torch.tensor(c) for c in cols])
    return m


def test_batches_equal_one_shot_and_duplicates_dropped() -> None:
    rows = [
        # patient, slice, inter, pred, gt, area mm2, thickness mm
        (0, 0, 3, 6, 4, 0.25, 5.0),
        (0, 1, 10, 10, 20, 0.25, 5.0),
        (0, 2, 0, 4, 0, 0.25, 5.0),
        (1, 0, 0, 0, 0, 0.5, 2.5),
    ]
    one = _stats(rows).compute()
    m = SliceStats()
    for r in rows + [rows[1]]:  # a DDP-padding duplicate
        m.update(*[torch.tensor([v]) for v in r])
    acc = m.compute()
    for k in one:
        assert torch.equal(one[k], acc[k]), k


def test_patient_table_is_3d_and_volumes_in_ml() -> None:
    rows = [
        (0, 0, 3, 6, 4, 0.25, 5.0),
        (0, 1, 10, 10, 20, 0.25, 5.0),
        (0, 2, 0, 4, 0, 0.25, 5.0),
        (1, 0, 0, 0, 0, 0.5, 2.5),
    ]
    slices = slice_table(_stats(rows).compute(), ["A", "B"])
    pat = patient_table(slices).set_index("patient_id")
    # 3D: inter 13, pred 20, gt 24 -> Dice 26/44 (not the mean of slice Dice)
    assert pat.loc["A", "dice"] == pytest.approx(26 / 44)
    assert pat.loc["A", "iou"] == pytest.approx(13 / 31)
    assert pat.loc["A", "rvd"] == pytest.approx(4 / 24)
    assert pat.loc["A", "pred_volume_ml"] == pytest.approx(20 * 0.25 * 5.0 / 1000)
    assert pat.loc["A", "true_volume_ml"] == pytest.approx(24 * 0.25 * 5.0 / 1000)
    assert math.isnan(pat.loc["B", "dice"])
    s = summarize(slices, pat.reset_index())
    assert s["dice_slice"] == pytest.approx((0.6 + 20 / 30) / 2)  # empty-truth slices excluded
    assert s["dice_patient"] == pytest.approx(26 / 44)  # patient B (no bleed) excluded
    assert s["fp_slices"] == 1 and s["fp_patients"] == 0
    err_a = (20 - 24) * 0.25 * 5.0 / 1000
    assert s["volume_mae_ml"] == pytest.approx(abs(err_a) / 2)
    assert s["volume_rmse_ml"] == pytest.approx(math.sqrt(err_a**2 / 2))


def test_a_single_slice_is_a_table_row() -> None:
    stats = _stats([(3, 27, 1, 2, 2, 0.25, 5.0)]).compute()
    df = slice_table(stats, None)
    assert len(df) == 1 and df["dice"].iloc[0] == pytest.approx(0.5)


def test_unknown_spacing_gives_no_volume() -> None:
    rows = [(0, 0, 3, 6, 4, float("nan"), 5.0), (0, 1, 1, 1, 1, float("nan"), 5.0)]
    pat = patient_table(slice_table(_stats(rows).compute(), ["A"]))
    assert math.isnan(pat["pred_volume_ml"].iloc[0]) and math.isnan(pat["true_volume_ml"].iloc[0])
    assert pat["dice"].iloc[0] == pytest.approx(8 / 12)  # overlap still scored


def test_volume_errors_use_the_patients_with_known_spacing_and_keys_do_not_collide() -> None:
    import torch

    from hemato.metrics.overlap import SliceStats, patient_table, slice_table, summarize

    st = SliceStats()
    # patient 0: spacing known; patient 1: unknown (NaN area); slice 1_000_000 of patient 0
    # would have collided with slice 0 of patient 1 under a patient * 1e6 + slice key
    st.update(
        torch.tensor([0, 0, 1]),
        torch.tensor([0, 1_000_000, 0]),
        torch.tensor([5, 0, 5]),
        torch.tensor([10, 0, 10]),
        torch.tensor([10, 0, 10]),
        torch.tensor([0.25, 0.25, float("nan")]),
        torch.tensor([5.0, 5.0, 5.0]),
    )
    sl = slice_table(st.compute(), ["a", "b"])
    assert len(sl) == 3
    s = summarize(sl, patient_table(sl))
    assert s["n_volume_patients"] == 1 and s["volume_mae_ml"] == 0.0  # not NaN
