"""One LightningModule for every network: loss, optimiser, per-slice/per-patient metrics.

The network returns logits; ``sigmoid(logits)`` is the paper's hematoma probability and
BCE-with-logits is exactly the paper's sigmoid + binary cross-entropy (numerically stable).
Validation and test probabilities are resized to each slice's native grid, thresholded at
``threshold`` (0.5) and scored there (``hemato.metrics.overlap``), so volumes use the native
pixel spacing.
"""

from __future__ import annotations

import math
from typing import Any

import hydra
import lightning as L
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from hemato.metrics.overlap import SliceStats, patient_table, slice_table, summarize

LOSSES = ("bce", "dice_bce")


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the whole batch (B, 1, H, W); eps smooths empty batches."""
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    return 1.0 - (2 * inter + eps) / (p.sum() + target.sum() + eps)


def probabilities_to_native(probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, S, S) probabilities -> (H, W) probabilities on the native grid (bilinear)."""
    if tuple(probs.shape[-2:]) == tuple(size):
        return probs[0]
    return F.interpolate(probs[None], size=size, mode="bilinear", align_corners=False)[0, 0]


def channels_last_wins(accelerator: str) -> bool:
    """Whether training in channels-last is the faster layout on this machine.

    GPU: yes (tensor cores with bf16). CPU: yes on AVX-512 CPUs, where oneDNN's NHWC kernels
    trained 1.3-2.0x faster than NCHW at width 16 and 1.3x at width 64 (``hemato.bench``, README
    "Performance"); no on AVX2-only CPUs, where NCHW was measured up to 2x faster for training
    at large widths.
    """
    if accelerator == "CUDAAccelerator":
        return True
    if accelerator != "CPUAccelerator":
        return False
    from hemato.inference import cpu_flags

    return "avx512f" in cpu_flags()


class SegmentationTask(L.LightningModule):
    """Trains a registered network on (image, mask) slices.

    Args:
        model: config of the network (``_target_: hemato.models.build_model`` + kwargs);
            stored in the checkpoint so the model can be rebuilt from it alone.
        optimizer: config with ``_target_`` (e.g. ``torch.optim.RMSprop``) and its kwargs.
        scheduler: optional config with ``_target_``; ``interval`` epoch|step.
        loss: ``bce`` (paper) or ``dice_bce``.
        threshold: probability threshold of the binary mask (paper: 0.5).
        empty: how empty-ground-truth slices/patients enter the means (see overlap.py).
        channels_last: channels-last memory format for training: ``"auto"`` (default) = where
            it was measured faster (``channels_last_wins``); ``python -m hemato.bench`` prints
            both layouts' rates for any machine.
        compile: wrap the network in ``torch.compile`` for training (off by default: no
            faster on the 2-core CPU; the checkpoint keeps the plain network's weights).
        input_size: the slice size (pixels) the network is trained on; stored in the
            checkpoint so prediction resizes scans exactly as training did.
        contract: the rest of the model's preprocessing contract (window, min component
            size, orientation, crop, training data; ``hemato.engine.Contract``), stored in
            the checkpoint with ``input_size`` and ``threshold``.
    """

    def __init__(
        self,
        model: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        loss: str = "bce",
        threshold: float = 0.5,
        empty: str = "exclude",
        channels_last: bool | str = "auto",
        input_size: int | None = None,
        compile: bool = False,
        contract: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        model = _plain(model)
        optimizer = _plain(optimizer)
        scheduler = _plain(scheduler) if scheduler else None
        if channels_last not in (True, False, "auto"):
            raise ValueError(f"channels_last must be true, false or auto, got {channels_last!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.save_hyperparameters(
            {
                "model": model,
                "optimizer": optimizer,
                "scheduler": scheduler,
                "loss": loss,
                "threshold": threshold,
                "empty": empty,
                "channels_last": channels_last,
                "input_size": input_size,
                "compile": compile,
                "contract": _plain(contract) if contract else None,
            }
        )
        self.net = hydra.utils.instantiate(model)
        self._channels_last = channels_last is True
        if self._channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self._compiled: list[Any] = []  # not a submodule: state_dict keys stay "net.*"
        self.val_stats = SliceStats()
        self.test_stats = SliceStats()
        self.test_slices: pd.DataFrame | None = None
        self.test_patients: pd.DataFrame | None = None
        self.test_summary: dict[str, float] = {}

    def setup(self, stage: str) -> None:
        """Resolve ``channels_last="auto"`` for the accelerator; build the compiled network."""
        if self.hparams.channels_last == "auto" and self._trainer is not None:
            self._channels_last = channels_last_wins(type(self.trainer.accelerator).__name__)
            if self._channels_last:
                self.net = self.net.to(memory_format=torch.channels_last)
        if self.hparams.get("compile") and stage == "fit" and not self._compiled:
            self._compiled.append(torch.compile(self.net))

    # ------------------------------------------------------------------ forward / loss
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> logits (B, 1, S, S)."""
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self._compiled and self.training:
            return self._compiled[0](x)
        return self.net(x)

    def compute_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # the loss in fp32 under bf16 autocast
        loss = F.binary_cross_entropy_with_logits(logits, target)
        if self.hparams.loss == "dice_bce":
            loss = loss + soft_dice_loss(logits, target)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.compute_loss(self(batch["image"]), batch["mask"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, batch: dict[str, Any], stats: SliceStats, stage: str) -> None:
        logits = self(batch["image"])
        loss = self.compute_loss(logits, batch["mask"])
        self.log(f"{stage}/loss", loss, on_epoch=True, batch_size=len(batch["image"]), sync_dist=True)
        probs = torch.sigmoid(logits.float())
        inter, pred, gt = [], [], []
        for p, m in zip(probs, batch["native_mask"]):
            m = m.to(p.device)
            pm = probabilities_to_native(p, tuple(m.shape)) > self.hparams.threshold
            inter.append((pm & m).sum())
            pred.append(pm.sum())
            gt.append(m.sum())
        stats.update(
            batch["patient"],
            batch["slice_index"],
            torch.stack(inter),
            torch.stack(pred),
            torch.stack(gt),
            batch["pixel_area_mm2"],
            batch["thickness_mm"],
        )

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_stats, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_stats, "test")

    def _tables(self, stats: SliceStats) -> tuple[pd.DataFrame, pd.DataFrame]:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        ids = getattr(dm, "patient_ids", None)
        slices = slice_table(stats.compute(), ids, self.hparams.empty)
        stats.reset()
        return slices, patient_table(slices, self.hparams.empty)

    def on_validation_epoch_end(self) -> None:
        slices, patients = self._tables(self.val_stats)
        summary = summarize(slices, patients, prefix="val/")
        # NaN (e.g. a validation set without bleeds) must not break checkpoint selection
        summary = {k: (0.0 if math.isnan(v) else v) for k, v in summary.items()}
        # computed from states already gathered from every process, so equal on all ranks
        self.log_dict(summary, prog_bar=False, sync_dist=True)
        if "val/dice_patient" in summary:
            self.log("val/dice", summary["val/dice_patient"], prog_bar=True, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self.test_slices, self.test_patients = self._tables(self.test_stats)
        self.test_summary = summarize(self.test_slices, self.test_patients, prefix="test/")
        self.log_dict({k: v for k, v in self.test_summary.items() if not math.isnan(v)}, sync_dist=True)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        opt = hydra.utils.instantiate(self.hparams.optimizer, params=self.parameters())
        sched_cfg = self.hparams.scheduler
        if not sched_cfg:
            return opt
        sched_cfg = dict(sched_cfg)
        interval = sched_cfg.pop("interval", "epoch")
        if sched_cfg.get("_target_", "").endswith("OneCycleLR"):
            sched_cfg.setdefault("total_steps", int(self.trainer.estimated_stepping_batches))
        sched = hydra.utils.instantiate(sched_cfg, optimizer=opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}


def _plain(cfg: Any) -> Any:
    """DictConfig -> plain dict (checkpoints must not pickle OmegaConf objects)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg) if cfg is not None else None
