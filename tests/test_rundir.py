"""Atomic outputs: a crash while writing never leaves a half-written file that looks complete."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hemato.rundir import write_atomic
from hemato.tasks.checkpointing import AtomicCheckpointIO


def test_write_atomic_survives_a_crash(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "metrics.json"
    write_atomic(target, '{"old": 1}')

    def crash(self, other):
        raise OSError("disk died during rename")

    monkeypatch.setattr(Path, "replace", crash)
    with pytest.raises(OSError):
        write_atomic(target, '{"new": 2, "half": ')
    monkeypatch.undo()
    assert target.read_text() == '{"old": 1}'  # the complete old file, never a partial new one


def test_checkpoint_io_is_atomic(tmp_path: Path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "epoch": 1}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 1

    def crash(src, dst):
        raise OSError("killed during the save")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1  # the previous complete checkpoint
