"""Atomic outputs: a crash while writing never leaves a half-written file that looks complete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hemato.data.phantom import PhantomConfig, generate_cohort
from hemato.rundir import temp_beside, write_atomic
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


def test_temporary_names_are_unique_per_process_and_beside_the_target(tmp_path: Path) -> None:
    target = tmp_path / "P0007.npz"
    here = temp_beside(target, ".npz")
    there = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from pathlib import Path; from hemato.rundir import temp_beside; print(temp_beside(Path({str(target)!r}), '.npz'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert here.parent == target.parent and here.name.endswith(".tmp.npz") and Path(there).parent == target.parent
    assert str(here) != there


def test_processes_filling_one_phantom_cache_at_once_all_succeed(tmp_path: Path) -> None:
    """A sweep's jobs start together and render the same phantom cohort into one cache: each
    must finish, and every cached patient must read back whole (CI once failed here when
    all processes shared one temporary name; with six processes that code failed here in 3 of
    4 tries, a race, so a pass alone proves less than a failure would)."""
    code = (
        "import sys; from hemato.data.phantom import PhantomConfig, generate_cohort; "
        "c = PhantomConfig(n_patients=6, image_size=64, min_slices=20, max_slices=21); "
        "print(sum(p.mask.sum() for p in generate_cohort(c, sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [e[-500:] for _, e in outs]
    assert len({o.strip() for o, _ in outs}) == 1  # the same cohort in every process
    (folder,) = tmp_path.glob("phantom-*")
    assert sorted(f.name for f in folder.iterdir()) == [f"P{i:04d}.npz" for i in range(6)]  # no temporary left
    cfg = PhantomConfig(n_patients=6, image_size=64, min_slices=20, max_slices=21)
    assert [p.image.shape for p in generate_cohort(cfg, tmp_path)] == [p.image.shape for p in generate_cohort(cfg)]


def test_a_moved_run_folder_still_finds_its_tested_checkpoint(tmp_path: Path) -> None:
    from hemato.rundir import tested_checkpoint

    old = tmp_path / "old" / "checkpoints" / "last.ckpt"
    new = tmp_path / "new"
    (new / "checkpoints").mkdir(parents=True)
    (new / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert tested_checkpoint(new, {"best_checkpoint": str(old)}) == new / "checkpoints" / "last.ckpt"
    assert tested_checkpoint(new, {}) == new / "checkpoints" / "last.ckpt"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"y")
    assert tested_checkpoint(new, {"best_checkpoint": str(old)}) == old
