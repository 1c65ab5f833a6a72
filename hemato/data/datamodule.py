"""LightningDataModule: patient-level split, resizing, augmentation, loaders.

Data path: source.load() -> [VolumeRecord] -> patient split (train / val / test, disjoint,
seeded, written to a file) -> per-slice tensors resized to ``input_size`` (cached as uint8)
-> albumentations (flips + shifts, as the paper) -> batches.

Validation and test items also carry the NATIVE-resolution mask and geometry, so the task
scores Dice/IoU/Rvd and volumes at the scan's own pixel spacing: the network output is
resized back to the native grid, never the truth down to the network's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hemato.data.records import DataSource, VolumeRecord
from hemato.data.synthesis import LesionBank, LesionPaste
from hemato.data.transforms import resize_mask, resize_slice
from hemato.inference import neighbour_index
from hemato.rundir import write_atomic


class SplitLeakageError(RuntimeError):
    """A patient appears on two sides of the split."""


def split_patients(
    patient_ids: Sequence[str], test_fraction: float, val_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Random patient-level split into train / val / test (seeded, disjoint).

    ``test_fraction`` of all patients go to test (at least 1), then ``val_fraction`` of the
    remaining ones to validation (at least 1 when ``val_fraction > 0``). ``test_fraction=0``:
    no test side (a final model trained on every patient but the validation ones, whose
    out-of-sample figures come from cross-validation).
    """
    ids = list(patient_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate patient ids in the dataset")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if len(ids) < 3:
        raise ValueError(f"need at least 3 patients for a train/val/test split, got {len(ids)}")
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    n_test = min(max(1, round(len(ids) * test_fraction)), len(ids) - 2) if test_fraction > 0 else 0
    test, rest = order[:n_test], order[n_test:]
    n_val = min(max(1, round(len(rest) * val_fraction)), len(rest) - 1) if val_fraction > 0 else 0
    split = {"train": sorted(rest[n_val:]), "val": sorted(rest[:n_val]), "test": sorted(test)}
    assert_disjoint(split)
    return split


def cv_split(
    patient_ids: Sequence[str], has_bleed: Sequence[bool], folds: int, fold: int, val_fraction: float, seed: int
) -> dict[str, Any]:
    """Patient-level ``folds``-fold cross-validation split, stratified by bleed / no bleed.

    Every patient is in exactly one fold; fold ``fold`` is the test set, and a validation set
    (``val_fraction`` of the other folds' patients, stratified too, at least 1) is carved from
    the remaining folds. Depends only on (ids, has_bleed, folds, seed): the fold of a patient
    is the same for every ``fold``, model and training seed. Returns the split plus
    ``"folds": {patient: fold}``.

    Written here rather than taken from scikit-learn's StratifiedKFold: ten lines, and it
    keeps scikit-learn out of the dependencies.
    """
    ids = list(patient_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate patient ids in the dataset")
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(f"need folds >= 2 and 0 <= fold < folds, got folds={folds}, fold={fold}")
    if len(ids) < 2 * folds:
        raise ValueError(f"{len(ids)} patients are too few for {folds} folds")
    rng = np.random.default_rng(seed)
    bleed = np.asarray(has_bleed, dtype=bool)
    assign: dict[str, int] = {}
    offset = 0
    for stratum in (bleed, ~bleed):  # deal each stratum round-robin over the folds
        members = sorted(np.asarray(ids, dtype=object)[stratum].tolist())
        for k, i in enumerate(rng.permutation(len(members))):
            assign[members[i]] = (offset + k) % folds
        offset = (offset + len(members)) % folds  # the next stratum fills the smaller folds first
    test = sorted(p for p in ids if assign[p] == fold)
    rest = [p for p in ids if assign[p] != fold]
    val: list[str] = []
    if val_fraction > 0:
        for stratum in (True, False):
            members = sorted(p for p in rest if bleed[ids.index(p)] == stratum)
            n = round(len(members) * val_fraction)
            val += [members[i] for i in rng.permutation(len(members))[:n]]
        if not val:
            val = [sorted(rest)[int(rng.integers(len(rest)))]]
    split = {"train": sorted(set(rest) - set(val)), "val": sorted(val), "test": test}
    assert_disjoint(split)
    return {**split, "folds": assign}


def assert_disjoint(split: dict[str, list[str]]) -> None:
    """Raise :class:`SplitLeakageError` if any patient is on two sides of ``split``."""
    sides = list(split)
    for i, a in enumerate(sides):
        for b in sides[i + 1 :]:
            common = set(split[a]) & set(split[b])
            if common:
                raise SplitLeakageError(f"patients on both {a} and {b}: {sorted(common)[:5]}")


def build_transform(augment: dict[str, Any] | None) -> A.Compose | None:
    """Training augmentation from a dict of probabilities and ranges.

    The paper's: ``hflip``, ``vflip`` (probabilities), ``shift`` (fraction) with ``shift_p``.
    Added for real CT (all optional, off when absent or 0): ``rot90`` (probability of a
    random multiple of 90 degrees: orientation robustness), ``scale`` (+-fraction) and
    ``rotate`` (+-degrees) joined into the same affine, ``brightness`` / ``contrast``
    (+-fraction, ``intensity_p``: window and scanner variation), ``gamma`` (+-percent),
    ``crop`` (pixels: train on random crops of that side, placed on the bleed when the slice
    has one, nnU-Net's patch training; the network is fully convolutional and still sees
    whole slices at validation, test and prediction).
    Robustness to how scans arrive (issue 23, rung 5): ``scale`` may be a range ``[min, max]``
    (e.g. [0.7, 1.4]: the head's size in the frame), ``noise_hu`` (Gaussian noise of sigma up
    to that many HU, in grey levels of the 120 HU brain window, with ``noise_p``) and
    ``sharpen`` (probability of an unsharp-mask edge boost: sharp reconstruction kernels).
    """
    if not augment:
        return None
    ops: list[A.BasicTransform] = []
    crop = int(augment.get("crop", 0) or 0)
    if crop > 0:
        if crop % 32:
            raise ValueError(f"augment.crop={crop} must be a multiple of 32")
        ops.append(A.CropNonEmptyMaskIfExists(height=crop, width=crop))
    if augment.get("rot90", 0) > 0:
        ops.append(A.RandomRotate90(p=augment["rot90"]))
    if augment.get("hflip", 0) > 0:
        ops.append(A.HorizontalFlip(p=augment["hflip"]))
    if augment.get("vflip", 0) > 0:
        ops.append(A.VerticalFlip(p=augment["vflip"]))
    shift = float(augment.get("shift", 0.0))
    scale = augment.get("scale", 0.0) or 0.0
    lo, hi = (float(scale[0]), float(scale[1])) if isinstance(scale, Sequence) else (1 - scale, 1 + scale)
    if not 0 < lo <= hi:
        raise ValueError(f"augment.scale={scale}: need 0 < min <= max")
    rotate = float(augment.get("rotate", 0.0))
    if shift > 0 or (lo, hi) != (1, 1) or rotate > 0:
        ops.append(
            A.Affine(
                translate_percent={"x": (-shift, shift), "y": (-shift, shift)},
                scale=(lo, hi),
                rotate=(-rotate, rotate),
                p=float(augment.get("shift_p", 0.5)),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
            )
        )
    b, c = float(augment.get("brightness", 0.0)), float(augment.get("contrast", 0.0))
    if b > 0 or c > 0:
        ops.append(
            A.RandomBrightnessContrast(brightness_limit=b, contrast_limit=c, p=float(augment.get("intensity_p", 0.5)))
        )
    gamma = float(augment.get("gamma", 0.0))
    if gamma > 0:
        ops.append(A.RandomGamma(gamma_limit=(100 - gamma, 100 + gamma), p=float(augment.get("intensity_p", 0.5))))
    noise = float(augment.get("noise_hu", 0.0))
    if noise > 0:  # sigma in HU -> fraction of 255 grey levels over the 120 HU window
        ops.append(A.GaussNoise(std_range=(0.0, min(noise / 120.0, 1.0)), p=float(augment.get("noise_p", 0.5))))
    if augment.get("sharpen", 0) > 0:
        ops.append(A.Sharpen(alpha=(0.2, 0.6), lightness=(1.0, 1.0), p=float(augment["sharpen"])))
    return A.Compose(ops) if ops else None


class EpochSampler(Sampler):
    """Training sampler whose draw depends only on (seed, epoch): shuffled order, or
    ``num_samples`` draws with replacement from ``weights``. Yields ``(epoch, index)`` so the
    dataset can seed each item's augmentation the same way. Lightning calls ``set_epoch``;
    a run resumed at epoch k therefore sees exactly the batches of an uninterrupted run.
    """

    def __init__(self, n: int, seed: int, weights: np.ndarray | None = None, num_samples: int | None = None) -> None:
        self.n = n
        self.seed = int(seed)
        self.weights = torch.as_tensor(weights, dtype=torch.double) if weights is not None else None
        self.num_samples = int(num_samples or n)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is not None:
            idx = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=g)
        else:
            idx = torch.randperm(self.n, generator=g)[: self.num_samples]
        return iter([(self.epoch, int(i)) for i in idx])


class SliceDataset(Dataset):
    """All slices of some patients, resized to ``input_size`` and cached as uint8.

    Item: ``image`` (C, S, S) float32 in [0, 1] with C = 2 * ``context`` + 1 (the slice and
    its ``context`` neighbours on each side, as the engine feeds them), ``mask`` (1, S, S)
    float32 {0, 1},
    ``patient`` int (index into the datamodule's patient list), ``slice_index`` int,
    ``pixel_area_mm2`` float (native), ``thickness_mm`` float, and with ``native=True``
    ``native_mask`` (H, W) bool tensor.
    """

    def __init__(
        self,
        records: Sequence[VolumeRecord],
        patient_index: Sequence[int],
        input_size: int,
        transform: A.Compose | None = None,
        native: bool = False,
        aug_seed: int = 0,
        context: int = 0,
    ) -> None:
        if context < 0:
            raise ValueError(f"context must be >= 0, got {context}")
        self.context = int(context)
        self.records = records
        self.aug_seed = int(aug_seed)
        self.transform = transform
        self.native = native
        self.items: list[tuple[int, int]] = []  # (record position, z)
        self.channels: list[list[int]] = []  # per item: cache rows of its input channels
        images, masks = [], []
        for pos, rec in enumerate(records):
            first = len(self.items)
            for z in range(rec.n_slices):
                self.items.append((pos, z))
                self.channels.append([first + j for j in neighbour_index(z, rec.n_slices, self.context)])
                images.append(resize_slice(rec.image[z], input_size))
                m = rec.mask[z] if rec.mask is not None else np.zeros(rec.image.shape[1:], bool)
                masks.append(resize_mask(m, input_size))
        self.patient_index = list(patient_index)
        self.images = np.stack(images) if images else np.zeros((0, input_size, input_size), np.uint8)
        self.masks = np.stack(masks) if masks else np.zeros((0, input_size, input_size), bool)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_bleed(self) -> np.ndarray:
        """(N,) bool: slice has hematoma pixels (at the network resolution)."""
        return self.masks.reshape(len(self.masks), -1).any(1)

    def input_image(self, i: int) -> np.ndarray:
        """Item ``i``'s cached network input before augmentation: (S, S) uint8, or (S, S, C)
        with the slice and its neighbours as channels (``context`` > 0)."""
        return self.images[i] if self.context == 0 else np.stack(self.images[self.channels[i]], axis=-1)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, i = key if isinstance(key, tuple) else (None, key)
        pos, z = self.items[i]
        rec = self.records[pos]
        image = self.input_image(i)
        mask = self.masks[i].astype(np.uint8)
        if self.transform is not None:
            if epoch is not None:  # reproducible per (seed, epoch, slice), see EpochSampler
                self.transform.set_random_seed(self.aug_seed * 1_000_003 + epoch * 100_003 + i)
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        image = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)  # (C, S, S)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32) / 255.0),
            "mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None],
            "patient": self.patient_index[pos],
            "slice_index": int(rec.slice_index[z]),
            "pixel_area_mm2": rec.pixel_area_mm2,
            "thickness_mm": float(rec.thickness_mm) if rec.thickness_mm is not None else float("nan"),
        }
        if self.native:
            m = rec.mask[z] if rec.mask is not None else np.zeros(rec.image.shape[1:], bool)
            item["native_mask"] = torch.from_numpy(np.ascontiguousarray(m, dtype=bool))
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep native masks (sizes may differ between patients) as a list."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if key == "native_mask":
            out[key] = values
        elif isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        else:
            out[key] = torch.tensor(values)
    return out


class HematomaDataModule(L.LightningDataModule):
    """Patient-level split and loaders for any :class:`DataSource`.

    Args:
        source: object with ``load() -> list[VolumeRecord]`` (phantom, manifest, ...).
        input_size: network input side in pixels (multiple of 32 for every model).
        batch_size: slices per batch.
        test_fraction: share of patients held out for testing (paper: 40/452).
        val_fraction: share of the remaining patients used for validation.
        split_seed: seed of the random patient split.
        augment: ``{hflip, vflip, shift, shift_p}`` or None.
        foreground_oversample: if > 0, each training epoch draws ``samples_per_epoch``
            slices with this probability mass on slices containing bleed (nnU-Net style).
        samples_per_epoch: slices per training epoch when oversampling (default: all).
        num_workers: DataLoader workers (0 on CPU: slices are cached as resized uint8 and
            augmenting one costs well under a millisecond, so workers would only take cores
            from the network; ``hemato.bench`` prints the loader's rate beside training's).
        pin_memory: page-locked batches for fast host-to-GPU copies; ``None`` = when CUDA
            is available.
        split_file: reuse a split written by an earlier run instead of drawing one.
        context: 2.5D input: each slice comes with ``context`` neighbouring slices on each
            side as extra channels (the network then takes ``2 * context + 1``; the model
            config reads it: ``in_channels: ${hemato_channels:${data.context}}``).
        folds, fold: cross-validation (``cv_split``): ``folds`` patient-level folds stratified
            by bleed / no bleed, seeded by ``split_seed``; fold ``fold`` is the test set and
            ``val_fraction`` of the rest validates. ``test_fraction`` is then unused.
        manifest: the dataset file of ``data=manifest`` (read by its source; kept here so
            the config can say ``data.manifest=PATH``).
        lesion_paste: lesion synthesis (``hemato.data.synthesis``), training only: ``{p,
            scale, intensity, min_px}``; the bank holds the training patients' bleeds, pasted
            into their bleed-free slices before the other augmentation. None or p = 0: off.
    """

    def __init__(
        self,
        source: DataSource,
        input_size: int = 128,
        batch_size: int = 8,
        test_fraction: float = 40 / 452,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        augment: dict[str, Any] | None = None,
        foreground_oversample: float = 0.0,
        samples_per_epoch: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        split_file: str | None = None,
        manifest: str | None = None,
        folds: int | None = None,
        fold: int | None = None,
        context: int = 0,
        lesion_paste: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.lesion_paste = dict(lesion_paste) if lesion_paste else None
        self.context = int(context)
        if (folds is None) != (fold is None):
            raise ValueError("data.folds and data.fold go together (e.g. data.folds=5 data.fold=0)")
        self.folds, self.fold = folds, fold
        self.fold_of: dict[str, int] = {}
        self.manifest = manifest
        if input_size % 32 != 0:
            raise ValueError(f"data.input_size must be a multiple of 32, got {input_size}")
        self.source = source
        self.input_size = input_size
        self.batch_size = batch_size
        self.test_fraction = test_fraction
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.augment = dict(augment) if augment else None
        self.foreground_oversample = foreground_oversample
        self.samples_per_epoch = samples_per_epoch
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.split_file = split_file
        self.records: list[VolumeRecord] = []
        self.split: dict[str, list[str]] = {}
        self.datasets: dict[str, SliceDataset] = {}

    # ----------------------------------------------------------------------------------
    @property
    def patient_ids(self) -> list[str]:
        return [r.patient_id for r in self.records]

    def record(self, patient_id: str) -> VolumeRecord:
        return self.records[self.patient_ids.index(patient_id)]

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.records = self.source.load()
        ids = self.patient_ids
        if self.split_file:
            self.split = json.loads(Path(self.split_file).read_text())["split"]
            missing = set(sum(self.split.values(), [])) - set(ids)
            if missing:
                raise ValueError(f"split file {self.split_file} names unknown patients: {sorted(missing)[:5]}")
        elif self.folds is not None:
            bleed = [bool(r.mask is not None and r.mask.any()) for r in self.records]
            cv = cv_split(ids, bleed, self.folds, self.fold, self.val_fraction, self.split_seed)
            self.fold_of = cv.pop("folds")
            self.split = cv
        else:
            self.split = split_patients(ids, self.test_fraction, self.val_fraction, self.split_seed)
        assert_disjoint(self.split)
        index = {pid: i for i, pid in enumerate(ids)}
        for side in ("train", "val", "test"):
            recs = [self.records[index[p]] for p in self.split[side]]
            self.datasets[side] = SliceDataset(
                recs,
                [index[p] for p in self.split[side]],
                self.input_size,
                transform=build_transform(self.augment) if side == "train" else None,
                native=side != "train",
                aug_seed=self.split_seed,
                context=self.context,
            )
        paste = self.lesion_paste or {}
        if float(paste.get("p", 0)) > 0:
            train = self.datasets["train"]
            bleed = np.flatnonzero(train.has_bleed)  # only these slices' pixels are read
            if not len(bleed):
                raise ValueError("data.lesion_paste needs at least one training slice with bleed")
            images = np.stack([train.input_image(i) for i in bleed])
            bank = LesionBank(images, train.masks[bleed], min_px=int(paste.get("min_px", 10)), sources=bleed)
            op = LesionPaste(
                bank, scale=float(paste.get("scale", 0.25)), intensity=float(paste.get("intensity", 10)), p=paste["p"]
            )
            rest = list(train.transform.transforms) if train.transform is not None else []
            train.transform = A.Compose([op, *rest])

    def save_split(self, path: str | Path) -> Path:
        """Write the split (and the source's patient list) as JSON; returns the path."""
        path = Path(path)
        payload = {
            "split": self.split,
            "seed": self.split_seed,
            "test_fraction": self.test_fraction,
            "val_fraction": self.val_fraction,
            "n_slices": {k: len(v) for k, v in self.datasets.items()},
        }
        if self.folds is not None:
            payload.update({"folds": self.folds, "fold": self.fold, "fold_of": self.fold_of})
        write_atomic(path, json.dumps(payload, indent=2))
        return path

    # ----------------------------------------------------------------------------------
    def _loader(self, side: str, shuffle: bool) -> DataLoader:
        ds = self.datasets[side]
        sampler = None
        if side == "train":
            w = None
            if self.foreground_oversample > 0:
                fg = ds.has_bleed
                w = np.where(
                    fg,
                    self.foreground_oversample / max(fg.sum(), 1),
                    (1 - self.foreground_oversample) / max((~fg).sum(), 1),
                )
            n = (
                (self.samples_per_epoch or len(ds))
                if w is not None
                else min(self.samples_per_epoch or len(ds), len(ds))
            )
            sampler = EpochSampler(len(ds), self.split_seed, w, n)
            shuffle = False
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
            drop_last=side == "train" and len(ds) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
