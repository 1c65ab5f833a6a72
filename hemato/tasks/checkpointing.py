"""Checkpoint writing for training runs (kept out of ``hemato.rundir``, which the report
imports without the training stack)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes ``<name>.tmp`` then renames it: a crash while
    saving never leaves a truncated ``best.ckpt``/``last.ckpt`` behind."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)
