"""Cross-validation folds: patient-level, stratified by bleed, deterministic, disjoint."""

from __future__ import annotations

import numpy as np
import pytest

from hemato.data.datamodule import build_transform, cv_split

IDS = [f"{i:03d}" for i in range(60)]
BLEED = [i % 60 < 28 for i in range(60)]  # 28 with bleed, 32 without (ct-ich's counts)


def test_every_patient_is_tested_exactly_once() -> None:
    tested = []
    for k in range(5):
        s = cv_split(IDS, BLEED, 5, k, 0.1, seed=0)
        assert (
            not set(s["train"]) & set(s["test"])
            and not set(s["val"]) & set(s["test"])
            and not set(s["train"]) & set(s["val"])
        )
        assert set(s["train"]) | set(s["val"]) | set(s["test"]) == set(IDS)
        assert all(s["folds"][p] == k for p in s["test"])
        tested += s["test"]
    assert sorted(tested) == IDS


def test_folds_are_stratified_and_balanced() -> None:
    s = cv_split(IDS, BLEED, 5, 0, 0.1, seed=3)
    bleed = {p: b for p, b in zip(IDS, BLEED)}
    per_fold = [[p for p in IDS if s["folds"][p] == k] for k in range(5)]
    assert [len(f) for f in per_fold] == [12] * 5
    n_bleed = [sum(bleed[p] for p in f) for f in per_fold]
    assert max(n_bleed) - min(n_bleed) <= 1 and sum(n_bleed) == 28
    # the validation set holds both kinds of patients too
    assert any(bleed[p] for p in s["val"]) and any(not bleed[p] for p in s["val"])


def test_fold_assignment_is_deterministic_and_independent_of_the_fold_asked() -> None:
    a = cv_split(IDS, BLEED, 5, 0, 0.1, seed=0)
    b = cv_split(IDS, BLEED, 5, 3, 0.1, seed=0)
    assert a["folds"] == b["folds"] == cv_split(IDS, BLEED, 5, 0, 0.1, seed=0)["folds"]
    assert a["folds"] != cv_split(IDS, BLEED, 5, 0, 0.1, seed=1)["folds"]
    # the order the patients come in does not matter
    order = np.random.default_rng(0).permutation(60)
    c = cv_split([IDS[i] for i in order], [BLEED[i] for i in order], 5, 0, 0.1, seed=0)
    assert c["folds"] == a["folds"]


def test_bad_fold_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="fold"):
        cv_split(IDS, BLEED, 5, 5, 0.1, 0)
    with pytest.raises(ValueError, match="too few"):
        cv_split(IDS[:6], BLEED[:6], 5, 0, 0.1, 0)


def test_rot90_and_intensity_augmentation_keep_image_and_mask_aligned() -> None:
    t = build_transform({"rot90": 1.0, "brightness": 0.2, "contrast": 0.2, "gamma": 20, "intensity_p": 1.0})
    img = np.zeros((32, 32), np.uint8)
    img[2:6, 20:30] = 200
    mask = (img > 0).astype(np.uint8)
    rotated = 0
    for seed in range(8):
        t.set_random_seed(seed)
        out = t(image=img, mask=mask)
        assert out["mask"].sum() == mask.sum()  # a rotation keeps the area
        assert (out["image"][out["mask"] > 0] > 0).all()  # the bright block moved with its mask
        rotated += not np.array_equal(out["mask"], mask)
    assert rotated >= 4
