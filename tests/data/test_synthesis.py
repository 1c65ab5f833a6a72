"""Lesion synthesis: the cavity mask, exact pasted masks, and validation data never touched."""

from __future__ import annotations

import numpy as np
import pytest

from hemato.data.datamodule import HematomaDataModule
from hemato.data.synthesis import LesionBank, LesionPaste, intracranial_mask
from tests.skull import skull_slice as head


def test_cavity_is_the_inside_of_a_closed_skull_ring() -> None:
    img = head()
    yy, xx = np.mgrid[:96, :96]
    inside = np.hypot(yy - 47.5, xx - 47.5) < 36
    np.testing.assert_array_equal(intracranial_mask(img), inside)
    assert not intracranial_mask(head(gap=20)).any()  # open ring (skull base): no cavity, no paste
    assert not intracranial_mask(np.zeros((96, 96), np.uint8)).any()


def bank_with_one_lesion() -> tuple[LesionBank, np.ndarray]:
    src = np.stack([head()] * 3, -1)
    lesion = np.zeros((96, 96), bool)
    lesion[40:48, 30:42] = True
    src[lesion] = (150, 200, 170)
    return LesionBank(src[None], lesion[None], min_px=10), lesion


def test_the_pasted_mask_is_exactly_the_pasted_lesion_and_inside_the_cavity() -> None:
    bank, lesion = bank_with_one_lesion()
    assert len(bank) == 1 and bank.lesions[0].mask.sum() == lesion.sum()
    op = LesionPaste(bank, scale=0.3, intensity=10, p=1.0)
    target = np.stack([head()] * 3, -1)
    cavity = intracranial_mask(target[..., 1])
    pasted = 0
    for seed in range(20):
        op.set_random_seed(seed)
        params = op.get_params_dependent_on_data({}, {"image": target, "mask": np.zeros((96, 96), np.uint8)})
        if params["paste"] is None:
            continue
        pix, m, y0, x0, delta = params["paste"]
        expected = np.zeros((96, 96), np.uint8)
        expected[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]][m] = 1
        out_mask = op.apply_to_mask(np.zeros((96, 96), np.uint8), **params)
        np.testing.assert_array_equal(out_mask, expected)
        assert cavity[expected.astype(bool)].all()
        out = op.apply(target, **params)
        inside = expected.astype(bool)
        # on the lesion: its own pixels (the three channels) shifted by the intensity jitter
        want = np.clip(pix.astype(np.float32)[m] + delta, 1, 249)
        np.testing.assert_allclose(out[inside], np.rint(want), atol=1)
        # farther than the feathered rim (3 px) nothing changed
        from scipy import ndimage as ndi

        far = ~ndi.binary_dilation(inside, iterations=3)
        np.testing.assert_array_equal(out[far], target[far])
        pasted += 1
    assert pasted >= 15


def test_slices_with_bleed_pass_unchanged() -> None:
    bank, lesion = bank_with_one_lesion()
    op = LesionPaste(bank, p=1.0)
    img = np.stack([head()] * 3, -1)
    mask = lesion.astype(np.uint8)
    op.set_random_seed(0)
    out = op(image=img, mask=mask)
    np.testing.assert_array_equal(out["image"], img)
    np.testing.assert_array_equal(out["mask"], mask)
    with pytest.raises(ValueError, match="at least one"):
        LesionPaste(LesionBank(img[None], np.zeros((1, 96, 96), bool)))


def test_datamodule_pastes_training_bleeds_only_and_never_touches_validation(small_source) -> None:
    kw = dict(input_size=64, batch_size=4, test_fraction=0.25, val_fraction=0.2, split_seed=0, context=1)
    plain = HematomaDataModule(small_source, **kw)
    synth = HematomaDataModule(small_source, lesion_paste={"p": 1.0}, **kw)
    plain.setup()
    synth.setup()
    op = synth.datasets["train"].transform.transforms[0]
    assert isinstance(op, LesionPaste) and len(op.bank) > 0
    train = synth.datasets["train"]
    train_patients = {synth.patient_ids[i] for i in train.patient_index}
    assert train_patients == set(synth.split["train"])
    for les in op.bank.lesions:  # every lesion is cut from a training slice with bleed, pixels and mask
        pos, z = train.items[les.source]
        assert synth.split["train"][pos] in train_patients and train.has_bleed[les.source]
        assert les.mask.sum() <= train.masks[les.source].sum()
        c = les.pixels.shape[-1] // 2
        assert set(np.unique(les.pixels[..., c][les.mask])) <= set(np.unique(train.images[les.source]))
    for side in ("val", "test"):
        assert synth.datasets[side].transform is None
        for i in range(len(synth.datasets[side])):
            a, b = plain.datasets[side][i], synth.datasets[side][i]
            assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
    # bleed-free training slices gain a bleed where a cavity takes one
    free = [i for i in range(len(train)) if not train.has_bleed[i]]
    gained = sum(bool(train[(0, i)]["mask"].any()) for i in free)
    assert gained > 0
