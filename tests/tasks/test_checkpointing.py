"""init_from: a training checkpoint's network weights start another run, or it is refused."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from hemato.models.registry import build_model
from hemato.tasks.checkpointing import init_network_from
from hemato.tasks.segmentation import SegmentationTask

OPT = {"_target_": "torch.optim.SGD", "lr": 0.1}


def net_cfg(**kw) -> dict:
    return {"_target_": "hemato.models.build_model", "name": "ours", "base_channels": 4, "num_heads": 2, **kw}


def save_task(path: Path, contract: dict | None = None, **kw) -> SegmentationTask:
    torch.manual_seed(0)
    task = SegmentationTask(net_cfg(**kw), OPT, contract=contract)
    trainer = L.Trainer(accelerator="cpu", logger=False, max_epochs=0)
    trainer.strategy.connect(task)
    trainer.save_checkpoint(path)
    return task


def fresh(**kw) -> torch.nn.Module:
    cfg = {k: v for k, v in net_cfg(**kw).items() if k != "_target_"}
    if cfg["name"] != "ours":
        cfg.pop("num_heads")
    torch.manual_seed(1)  # other weights than the saved network
    return build_model(**cfg)


def test_weights_are_copied_exactly(tmp_path: Path) -> None:
    src = save_task(tmp_path / "pre.ckpt", contract={"trained_on": "synthetic phantom"}, in_channels=3)
    net = fresh(in_channels=3)
    x = torch.rand(2, 3, 32, 32)
    src.eval(), net.eval()
    assert not torch.allclose(src.net(x), net(x))
    info = init_network_from(net, tmp_path / "pre.ckpt")
    assert torch.equal(src.net(x), net(x))
    assert info["tensors"] == len(net.state_dict()) and info["trained_on"] == "synthetic phantom"
    assert len(info["sha256"]) == 64 and info["path"].endswith("pre.ckpt")


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"in_channels": 1}, r"encoders\.0\.conv1\.weight has shape \(4, 3, 3, 3\).*\(4, 1, 3, 3\)"),
        ({"in_channels": 3, "base_channels": 8}, r"\S+ has shape"),
        ({"in_channels": 3, "sa": False}, "its network differs"),
        ({"in_channels": 3, "name": "unet"}, "its network differs"),
    ],
)
def test_another_network_is_refused_naming_the_file(tmp_path: Path, kw: dict, needle: str) -> None:
    save_task(tmp_path / "pre.ckpt", in_channels=3)
    net = fresh(**kw)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match=r"init_from=.*pre\.ckpt: " + needle):
        init_network_from(net, tmp_path / "pre.ckpt")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # left untouched


def test_missing_or_foreign_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        init_network_from(fresh(), tmp_path / "nope.ckpt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt: not a hemato training checkpoint"):
        init_network_from(fresh(), tmp_path / "other.pt")
