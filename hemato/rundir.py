"""Files of a run directory, shared by the writer (hemato.run, hemato.evaluation) and the
readers (hemato.report): atomic text writes and the per-patient prediction archive."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np


def temp_beside(path: Path, ext: str = "") -> Path:
    """A temporary name next to ``path`` (same folder, so a rename is atomic) that is
    unique to this process and thread: processes that write the same file at once (a sweep
    filling one phantom cache) never write into, or rename, each other's temporary file.
    ``ext`` is kept last (``np.savez`` appends ``.npz`` to a name without it)."""
    return path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp{ext}")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename (never half-written)."""
    tmp = temp_beside(path)
    tmp.write_text(text)
    tmp.replace(path)


def save_prediction(
    path: Path,
    image: np.ndarray,
    truth: np.ndarray | None,
    pred: np.ndarray,
    spacing_mm: tuple[float, float] | None,
    thickness_mm: float | None,
    slice_index: np.ndarray,
) -> None:
    """``.npz`` with image (Z,H,W) uint8, truth and pred (bit-packed along W), geometry."""
    tmp = temp_beside(path, ".npz")
    truth = truth if truth is not None else np.zeros_like(pred)
    np.savez_compressed(
        tmp,
        image=image,
        truth=np.packbits(truth, axis=-1),
        pred=np.packbits(pred, axis=-1),
        width=image.shape[-1],
        spacing_mm=np.asarray(spacing_mm if spacing_mm else (np.nan, np.nan), float),
        thickness_mm=float(thickness_mm or np.nan),
        slice_index=np.asarray(slice_index),
    )
    tmp.replace(path)


def load_prediction(path: Path) -> dict[str, Any]:
    """Inverse of :func:`save_prediction` (masks unpacked to bool)."""
    with np.load(path) as z:
        w = int(z["width"])
        return {
            "image": z["image"],
            "truth": np.unpackbits(z["truth"], axis=-1, count=w).astype(bool),
            "pred": np.unpackbits(z["pred"], axis=-1, count=w).astype(bool),
            "spacing_mm": tuple(z["spacing_mm"].tolist()),
            "thickness_mm": float(z["thickness_mm"]),
            "slice_index": z["slice_index"],
        }


def tested_checkpoint(run_dir: Path, metrics: dict[str, Any]) -> Path:
    """The checkpoint a finished run tested (``metrics.json``'s ``best_checkpoint``, else
    ``checkpoints/last.ckpt``); when the run folder was moved or copied since, the file of
    that name under ``run_dir/checkpoints``."""
    ck = Path(metrics.get("best_checkpoint") or Path(run_dir) / "checkpoints" / "last.ckpt")
    return ck if ck.is_file() else Path(run_dir) / "checkpoints" / ck.name
