"""Phantom: deterministic, exact volumes, realistic intensities, tags, cache round trip."""

from __future__ import annotations

import numpy as np
import pytest

from hemato.data.phantom import (
    PhantomConfig,
    PhantomSource,
    generate_cohort,
    generate_patient,
    load_patient,
    save_patient,
    window,
)

CFG = PhantomConfig(n_patients=8, image_size=128, seed=3)


@pytest.fixture(scope="module")
def cohort():
    return generate_cohort(CFG)


def test_deterministic_from_seed(cohort) -> None:
    again = generate_patient(CFG, 2)
    assert np.array_equal(again.image, cohort[2].image)
    assert np.array_equal(again.mask, cohort[2].mask)
    other = generate_patient(PhantomConfig(n_patients=8, image_size=128, seed=4), 2)
    assert not np.array_equal(other.image, cohort[2].image) or other.image.shape != cohort[2].image.shape


def test_geometry_recorded(cohort) -> None:
    for p in cohort:
        assert 20 <= p.image.shape[0] <= 40
        assert p.image.shape[1:] == (128, 128) and p.image.dtype == np.uint8
        assert p.thickness_mm == 5.0
        # 0.45 mm at 512 -> 1.8 mm at 128 (same field of view), +-5 % jitter
        assert 1.8 * 0.95 <= p.spacing_mm[0] <= 1.8 * 1.05


def test_volume_is_exact_voxel_count(cohort) -> None:
    for p in cohort:
        expected = p.mask.sum() * p.spacing_mm[0] * p.spacing_mm[1] * 5.0 / 1000.0
        assert p.volume_ml == pytest.approx(expected, rel=1e-12)


def test_bleeds_span_several_slices_and_sensible_volumes() -> None:
    ps = generate_cohort(PhantomConfig(n_patients=20, image_size=128, seed=0))
    vols = [p.volume_ml for p in ps]
    assert any(v == 0 for v in vols), "some patients have no bleed"
    bleeding = [p for p in ps if p.volume_ml > 0]
    assert len(bleeding) >= 12
    for p in bleeding:
        assert (p.mask.reshape(p.mask.shape[0], -1).any(1)).sum() >= 2
        assert 0.5 < p.volume_ml < 250
    kinds = {h.kind for p in ps for h in p.hematomas}
    assert kinds == {"compact", "lobulated", "subdural", "epidural"}


def test_intensities_look_like_brain_window_ct() -> None:
    p = generate_patient(PhantomConfig(n_patients=1, image_size=256, seed=1), 0)
    mid = p.image[p.image.shape[0] * 2 // 3]
    assert (mid == 0).mean() > 0.3  # air around the head
    assert (mid == 255).mean() > 0.02  # the skull saturates
    brain = mid[(mid > 60) & (mid < 200)]
    assert 100 < np.median(brain) < 160  # parenchyma ~ 25-40 HU in a 40/120 window
    ps = [generate_patient(PhantomConfig(n_patients=6, image_size=128, seed=5), i) for i in range(6)]
    blood = np.concatenate([q.image[q.mask] for q in ps if q.mask.any()])
    assert np.median(blood) > np.median(brain) + 20  # acute blood is hyperdense


def test_tags_say_why() -> None:
    ps = generate_cohort(PhantomConfig(n_patients=20, image_size=128, seed=0))
    for p in ps:
        kinds = {h.kind for h in p.hematomas}
        if kinds & {"subdural", "epidural"}:
            assert p.tags["near_skull"] and p.tags["near_skull_reason"]
        if kinds & {"lobulated", "subdural"}:
            assert p.tags["irregular"] and p.tags["irregular_reason"]
        if not kinds:
            assert not p.tags["irregular"] and not p.tags["near_skull"]


def test_window() -> None:
    hu = np.array([-1000.0, -20.0, 40.0, 100.0, 2000.0])
    assert window(hu, 40, 120).tolist() == [0, 0, 128, 255, 255]


def test_cache_round_trip(tmp_path, cohort) -> None:
    save_patient(cohort[1], tmp_path / "p.npz")
    back = load_patient(tmp_path / "p.npz")
    assert np.array_equal(back.image, cohort[1].image) and np.array_equal(back.mask, cohort[1].mask)
    assert back.spacing_mm == cohort[1].spacing_mm and back.tags == cohort[1].tags
    src = PhantomSource(cache_dir=str(tmp_path), n_patients=3, image_size=64, seed=1)
    first = src.load()
    assert len(list(tmp_path.rglob("*.npz"))) == 4
    second = src.load()
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, second))
