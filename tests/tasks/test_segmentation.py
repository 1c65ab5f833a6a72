"""The task: learns, scores at native resolution, rebuilds from its checkpoint."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from hemato.data.datamodule import HematomaDataModule
from hemato.tasks.segmentation import SegmentationTask, probabilities_to_native, soft_dice_loss

MODEL = {"_target_": "hemato.models.build_model", "name": "ours", "base_channels": 4, "num_heads": 2}
OPT = {"_target_": "torch.optim.RMSprop", "lr": 1e-3}


def test_loss_decreases_when_overfitting_one_batch() -> None:
    torch.manual_seed(0)
    task = SegmentationTask(MODEL, OPT, loss="dice_bce")
    x = torch.rand(2, 1, 32, 32)
    y = (x > 0.7).float()
    opt = task.configure_optimizers()
    first = None
    for _ in range(40):
        loss = task.compute_loss(task(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    assert float(loss) < 0.5 * first


def test_soft_dice_loss_values() -> None:
    t = torch.zeros(1, 1, 4, 4)
    t[..., :2, :] = 1
    perfect = torch.where(t > 0, 50.0, -50.0)
    assert float(soft_dice_loss(perfect, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(soft_dice_loss(-perfect, t)) == pytest.approx(1 - 1 / 17, abs=1e-4)


def test_probabilities_resized_to_native() -> None:
    p = torch.zeros(1, 8, 8)
    p[:, :4] = 1.0
    up = probabilities_to_native(p, (32, 24))
    assert up.shape == (32, 24)
    assert (up > 0.5).float().mean() == pytest.approx(0.5)


class _Oracle(torch.nn.Module):
    """Returns logits of the (resized) truth, injected through a side channel."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.masks: torch.Tensor | None = None

    def forward(self, x):
        return torch.where(self.masks > 0.5, 20.0, -20.0) + 0 * self.w


def test_perfect_prediction_scores_one_at_native_resolution(small_source) -> None:
    dm = HematomaDataModule(small_source, input_size=64, batch_size=4, test_fraction=0.34)
    task = SegmentationTask(MODEL, OPT)
    oracle = _Oracle()
    task.net = oracle
    orig = task.test_step

    def step(batch, batch_idx):
        oracle.masks = batch["mask"]
        return orig(batch, batch_idx)

    task.test_step = step
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False)
    trainer.test(task, datamodule=dm, verbose=False)
    s = task.test_summary
    assert s["test/dice_patient"] == pytest.approx(1.0)
    assert s["test/rvd_patient"] == pytest.approx(0.0)
    assert s["test/volume_mae_ml"] == pytest.approx(0.0)
    pat = task.test_patients.set_index("patient_id")
    for pid, row in pat.iterrows():
        assert row["true_volume_ml"] == pytest.approx(
            dm.record(pid).mask.sum() * dm.record(pid).pixel_area_mm2 * 5 / 1000
        )


def test_checkpoint_rebuilds_the_model(tmp_path) -> None:
    task = SegmentationTask(MODEL, OPT)
    trainer = L.Trainer(accelerator="cpu", logger=False, max_epochs=0)
    trainer.strategy.connect(task)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    back = SegmentationTask.load_from_checkpoint(tmp_path / "m.ckpt", weights_only=True)
    x = torch.rand(1, 1, 32, 32)
    task.eval()
    back.eval()
    assert torch.allclose(task(x), back(x))


def test_unknown_loss() -> None:
    with pytest.raises(ValueError, match="loss"):
        SegmentationTask(MODEL, OPT, loss="focal")


def test_channels_last_auto_follows_the_machine_and_forced_on_converts_weights() -> None:
    from hemato.tasks.segmentation import channels_last_wins

    assert channels_last_wins("CUDAAccelerator") and not channels_last_wins("MPSAccelerator")
    auto = SegmentationTask(MODEL, OPT)
    trainer = L.Trainer(accelerator="cpu", logger=False, max_epochs=0)
    auto.trainer = trainer
    auto.setup("fit")
    assert auto._channels_last is channels_last_wins("CPUAccelerator")
    auto = SegmentationTask(MODEL, OPT, channels_last=False)
    conv = next(
        m
        for m in auto.net.modules()
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) and m.in_channels > 1
    )
    assert conv.weight.is_contiguous()
    forced = SegmentationTask(MODEL, OPT, channels_last=True)
    conv = next(
        m
        for m in forced.net.modules()
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) and m.in_channels > 1
    )
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    x = torch.rand(2, 1, 32, 32)
    forced.net.load_state_dict(auto.net.state_dict())
    auto.eval()
    forced.eval()
    assert torch.allclose(auto(x), forced(x), atol=1e-5)
    with pytest.raises(ValueError, match="channels_last"):
        SegmentationTask(MODEL, OPT, channels_last="yes")


def test_compiled_network_is_not_a_submodule() -> None:
    task = SegmentationTask(MODEL, OPT, compile=True)
    task.setup("fit")
    assert len(task._compiled) == 1
    assert all(k.startswith("net.") for k in task.state_dict())  # checkpoints stay loadable
