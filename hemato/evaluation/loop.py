"""The one per-patient evaluation loop: each record's slices through the engine
(:func:`hemato.engine.segment`, the path ``hemato.predict`` takes), optionally rotated in plane.
The run's test metrics (:mod:`~hemato.evaluation.run_test`) and the out-of-fold evaluation
(:mod:`~hemato.evaluation.oof`) both measure what this yields."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hemato.engine import Contract, segment


@dataclass
class Segmented:
    """One record segmented at one in-plane rotation."""

    record: Any  # the VolumeRecord (image (Z, H, W) uint8, mask, spacing, ...)
    angle: int  # degrees the input was rotated by
    image: np.ndarray  # (Z, H, W) uint8 as the network saw it (rotated)
    probs: np.ndarray  # (Z, H, W) probabilities on the rotated grid
    mask: np.ndarray  # (Z, H, W) bool, rotated back to the record's orientation
    truth: np.ndarray  # (Z, H, W) bool in the record's orientation (all False without a mask)


def segment_patients(
    forward: Callable[..., Any],
    records: Iterable[Any],
    con: Contract,
    rotations: Iterable[int] = (0,),
    batch_size: int = 16,
) -> Iterator[Segmented]:
    """Segment every record at every rotation (multiples of 90 degrees), in that order."""
    for rec in records:
        truth = rec.mask.astype(bool) if rec.mask is not None else np.zeros(rec.image.shape, bool)
        for angle in rotations:
            k = (int(angle) // 90) % 4
            img = np.ascontiguousarray(np.rot90(rec.image, k, axes=(1, 2)))
            probs, mask = segment(forward, img, con, batch_size=batch_size)
            yield Segmented(rec, int(angle), img, probs, np.ascontiguousarray(np.rot90(mask, -k, axes=(1, 2))), truth)
