"""Patient-level split, leakage impossible, items, augmentation alignment, native masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hemato.data.datamodule import (
    HematomaDataModule,
    SplitLeakageError,
    assert_disjoint,
    build_transform,
    split_patients,
)

IDS = [f"P{i:03d}" for i in range(452)]


def test_paper_split_sizes_and_disjoint() -> None:
    s = split_patients(IDS, 40 / 452, 0.1, seed=0)
    assert len(s["test"]) == 40
    assert len(s["train"]) + len(s["val"]) == 412
    assert set(s["train"]) | set(s["val"]) | set(s["test"]) == set(IDS)
    assert not (set(s["train"]) & set(s["test"])) and not (set(s["val"]) & set(s["test"]))


def test_split_is_seeded() -> None:
    assert split_patients(IDS, 0.1, 0.1, 1) == split_patients(IDS, 0.1, 0.1, 1)
    assert split_patients(IDS, 0.1, 0.1, 1) != split_patients(IDS, 0.1, 0.1, 2)


def test_leakage_is_detected() -> None:
    with pytest.raises(SplitLeakageError, match="P001"):
        assert_disjoint({"train": ["P000", "P001"], "val": [], "test": ["P001"]})
    with pytest.raises(ValueError, match="duplicate"):
        split_patients(["a", "a", "b", "c"], 0.3, 0.1, 0)


def test_test_fraction_zero_keeps_every_patient_for_training_and_validation() -> None:
    s = split_patients(IDS[:60], 0.0, 0.1, seed=0)
    assert s["test"] == [] and len(s["val"]) == 6 and len(s["train"]) == 54


@pytest.mark.parametrize("frac", [1.0, -0.1, 1.5])
def test_bad_test_fraction(frac: float) -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        split_patients(IDS, frac, 0.1, 0)


def test_datamodule_items_and_split_file(small_source, tmp_path) -> None:
    dm = HematomaDataModule(
        small_source, input_size=32, batch_size=4, test_fraction=0.25, val_fraction=0.2, split_seed=0
    )
    dm.setup()
    n = {k: len(v) for k, v in dm.split.items()}
    assert n == {"test": 3, "val": 2, "train": 7}
    path = dm.save_split(tmp_path / "split.json")
    saved = json.loads(path.read_text())
    assert saved["split"] == dm.split
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 1, 32, 32) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert set(torch.unique(batch["mask"]).tolist()) <= {0.0, 1.0}
    test_batch = next(iter(dm.test_dataloader()))
    assert "native_mask" in test_batch and test_batch["native_mask"][0].shape == (64, 64)
    assert "native_mask" not in batch
    # every test slice belongs to a test patient
    test_pat = {dm.patient_ids[int(p)] for b in dm.test_dataloader() for p in b["patient"]}
    assert test_pat == set(dm.split["test"])


def test_split_file_is_reused(small_source, tmp_path) -> None:
    dm = HematomaDataModule(small_source, input_size=32, test_fraction=0.25, split_seed=0)
    dm.setup()
    dm.save_split(tmp_path / "s.json")
    dm2 = HematomaDataModule(
        small_source, input_size=32, test_fraction=0.5, split_seed=99, split_file=str(tmp_path / "s.json")
    )
    dm2.setup()
    assert dm2.split == dm.split


def test_foreground_oversampling(small_source) -> None:
    dm = HematomaDataModule(
        small_source, input_size=32, batch_size=8, foreground_oversample=0.9, samples_per_epoch=400, test_fraction=0.25
    )
    dm.setup()
    frac = np.mean([float(m.amax()) for b in dm.train_dataloader() for m in b["mask"]])
    assert len(dm.train_dataloader()) == 50
    assert frac > 0.8


def test_augmentation_moves_image_and_mask_together() -> None:
    t = build_transform({"hflip": 1.0, "vflip": 0.0, "shift": 0.2, "shift_p": 1.0})
    img = np.zeros((64, 64), np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    img[10:20, 5:15] = 200
    mask[10:20, 5:15] = 1
    for _ in range(5):
        out = t(image=img, mask=mask)
        assert out["mask"].sum() > 0
        assert np.array_equal(out["image"] == 200, out["mask"] == 1)


def test_input_size_must_suit_every_network(small_source) -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        HematomaDataModule(small_source, input_size=48)


def test_epoch_sampler_depends_only_on_seed_and_epoch(small_source) -> None:
    from hemato.data.datamodule import EpochSampler

    a, b = EpochSampler(50, seed=3, num_samples=20), EpochSampler(50, seed=3, num_samples=20)
    list(a)  # a has drawn before, b has not: history must not matter
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b) and all(e == 4 for e, _ in a)
    b.set_epoch(5)
    assert list(a) != list(b)
    dm = HematomaDataModule(
        small_source,
        input_size=32,
        batch_size=4,
        test_fraction=0.25,
        augment={"hflip": 0.5, "shift": 0.1, "shift_p": 0.5},
    )
    dm.setup()
    first = next(iter(dm.train_dataloader()))
    for _ in range(3):  # consume global RNG in between
        torch.rand(100)
        np.random.rand(10)
    again = next(iter(dm.train_dataloader()))
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["mask"], again["mask"])


def test_robustness_augmentation_noise_sharpen_and_scale_range() -> None:
    t = build_transform({"noise_hu": 20, "noise_p": 1.0})
    img = np.full((128, 128), 100, np.uint8)
    t.set_random_seed(0)
    sds = [t(image=img, mask=np.zeros_like(img))["image"].astype(float).std() for _ in range(20)]
    assert 0 < max(sds) <= 20 * 255 / 120 * 1.05  # sigma up to 20 HU in grey levels of the 120 HU window
    square = np.zeros((128, 128), np.uint8)
    square[44:84, 44:84] = 1
    t = build_transform({"scale": [0.7, 0.7], "shift_p": 1.0})
    t.set_random_seed(0)
    out = t(image=square * 200, mask=square)
    assert out["mask"].sum() == pytest.approx(0.49 * square.sum(), rel=0.05)
    t = build_transform({"sharpen": 1.0})
    t.set_random_seed(0)
    edge = np.where(np.arange(128)[None, :] < 64, 60, 120).astype(np.uint8).repeat(128, 0)
    sharp = t(image=edge, mask=np.zeros_like(edge))["image"]
    assert sharp.max() > 120 and sharp.min() < 60  # overshoot on both sides of the edge
    with pytest.raises(ValueError, match="scale"):
        build_transform({"scale": [1.2, 0.8]})
