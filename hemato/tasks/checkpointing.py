"""Checkpoint writing for training runs (kept out of ``hemato.rundir``, which the report
imports without the training stack)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from hemato.rundir import temp_beside


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes a temporary file then renames it: a crash while
    saving never leaves a truncated ``best.ckpt``/``last.ckpt`` behind."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        tmp = temp_beside(path)
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


def init_network_from(net: Any, path: str | Path) -> dict[str, Any]:
    """Load the network weights of a hemato training checkpoint into ``net`` (fine-tuning
    from a pretrained run, e.g. on the phantom); the optimizer, scheduler and epoch start fresh.

    The checkpoint is read with ``torch.load(weights_only=True)`` (no pickled code runs). Every
    tensor must match ``net`` in name and shape, so a network of another architecture, width
    or input channels (``data.context``) is refused with one line naming the file and the first
    mismatch. Returns what was loaded: ``path``, ``sha256``, ``tensors``, ``trained_on`` (the
    source run's contract) and ``epochs`` (the source run's).
    """
    import hashlib

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"init_from={path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        sd = ckpt["state_dict"]
    except Exception as e:  # a foreign or damaged file: say which and why, in one line
        raise ValueError(f"init_from={path}: not a hemato training checkpoint ({type(e).__name__}: {e})") from e
    src = {k.removeprefix("net."): v for k, v in sd.items() if k.startswith("net.")}
    own = net.state_dict()
    missing = sorted(set(own) - set(src))
    extra = sorted(set(src) - set(own))
    if missing or extra:
        what = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise ValueError(
            f"init_from={path}: its network differs from model=... ({len(missing)} tensors missing, {len(extra)} unexpected; {what})"
        )
    for k, v in own.items():
        if tuple(src[k].shape) != tuple(v.shape):
            raise ValueError(
                f"init_from={path}: {k} has shape {tuple(src[k].shape)}, the configured network {tuple(v.shape)} (another width, or data.context?)"
            )
    net.load_state_dict(src, strict=True)
    hp = ckpt.get("hyper_parameters") or {}
    return {
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "tensors": len(src),
        "trained_on": (hp.get("contract") or {}).get("trained_on", "unknown"),
        "epochs": int(ckpt.get("epoch", -1)) + 1,
    }
