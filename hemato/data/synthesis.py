"""Lesion synthesis: real bleeds of training patients pasted into bleed-free training slices.

Copy-paste augmentation (Ghiasi et al. 2021; CarveMix, Zhang et al. 2021, for lesions): a
:class:`LesionBank` cuts every bleed component (pixels of all input channels + its mask) out
of the TRAINING slices at the network's resolution; :class:`LesionPaste`, an albumentations
transform, pastes one into a slice that has no bleed, with shape jitter (rot90 / flip, scale)
and intensity jitter, at a random place whose every lesion pixel lies inside the
intracranial cavity (:func:`hemato.inference.intracranial_mask`), and blends it over a 1-2 pixel feathered
rim. The pasted slice's mask is exactly the pasted lesion's mask.

Written here because no maintained library pastes a segmentation-labelled object at an
anatomically constrained place; the geometry uses scipy.ndimage and OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np
from scipy import ndimage as ndi

from hemato.inference import BONE, intracranial_mask


@dataclass(frozen=True)
class Lesion:
    """One bleed component: ``pixels`` (h, w, C) uint8 of its bounding box (+ margin),
    ``mask`` (h, w) bool, ``source`` (training-set slice index)."""

    pixels: np.ndarray
    mask: np.ndarray
    source: int


class LesionBank:
    """Bleed components of training slices, each with a ``margin``-pixel rim of context.

    ``images`` (N, S, S) or (N, S, S, C) uint8, ``masks`` (N, S, S) bool; ``sources`` (N,)
    the slices' indices in the training set (default 0..N-1); components under ``min_px``
    pixels are left out."""

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        min_px: int = 10,
        margin: int = 3,
        sources: np.ndarray | None = None,
    ) -> None:
        sources = np.arange(len(masks)) if sources is None else np.asarray(sources)
        if images.ndim == 3:
            images = images[..., None]
        self.lesions: list[Lesion] = []
        for i in np.flatnonzero(masks.reshape(len(masks), -1).any(1)):
            lab, n = ndi.label(masks[i])
            for k, sl in enumerate(ndi.find_objects(lab), start=1):
                comp = lab == k
                if comp[sl].sum() < min_px:
                    continue
                y0, y1 = max(sl[0].start - margin, 0), min(sl[0].stop + margin, comp.shape[0])
                x0, x1 = max(sl[1].start - margin, 0), min(sl[1].stop + margin, comp.shape[1])
                self.lesions.append(Lesion(images[i, y0:y1, x0:x1].copy(), comp[y0:y1, x0:x1].copy(), int(sources[i])))

    def __len__(self) -> int:
        return len(self.lesions)


class LesionPaste(A.DualTransform):
    """Paste a bank lesion into a slice WITHOUT bleed (slices with bleed pass unchanged).

    Args:
        bank: lesions of the training slices.
        scale: +-fraction of isotropic scaling of the lesion.
        intensity: +-windowed grey levels added to the lesion's pixels (2.1 levels per HU).
        tries: random placements tried before the slice is left unchanged.
        p: probability, per bleed-free slice.
    Image (S, S) or (S, S, C) uint8 (the 2.5D channels get the same lesion footprint);
    mask (S, S) uint8 {0, 1}: the pasted lesion's pixels become 1, nothing else changes.
    """

    def __init__(self, bank: LesionBank, scale: float = 0.25, intensity: float = 10.0, tries: int = 20, p: float = 0.5):
        super().__init__(p=p)
        if not len(bank):
            raise ValueError("lesion synthesis needs at least one bleed in the training slices")
        self.bank, self.scale, self.intensity, self.tries = bank, float(scale), float(intensity), int(tries)

    @property
    def targets_as_params(self) -> list[str]:
        return ["image", "mask"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        mask, image = data["mask"], data["image"]
        if mask.any():
            return {"paste": None}
        rng = self.random_generator
        lesion = self.bank.lesions[int(rng.integers(len(self.bank)))]
        pix, m = lesion.pixels, lesion.mask
        k = int(rng.integers(4))
        pix, m = np.rot90(pix, k), np.rot90(m, k)
        if rng.random() < 0.5:
            pix, m = pix[:, ::-1], m[:, ::-1]
        s = 1.0 + rng.uniform(-self.scale, self.scale)
        h, w = max(2, round(m.shape[0] * s)), max(2, round(m.shape[1] * s))
        pix = cv2.resize(np.ascontiguousarray(pix), (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
        m = cv2.resize(np.ascontiguousarray(m, dtype=np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        if not m.any() or h >= mask.shape[0] or w >= mask.shape[1]:
            return {"paste": None}
        centre = image if image.ndim == 2 else image[..., image.shape[-1] // 2]
        cavity = intracranial_mask(centre)
        ys, xs = np.nonzero(cavity)
        for _ in range(self.tries if len(ys) else 0):
            j = int(rng.integers(len(ys)))
            y0, x0 = ys[j] - h // 2, xs[j] - w // 2
            if y0 < 0 or x0 < 0 or y0 + h > mask.shape[0] or x0 + w > mask.shape[1]:
                continue
            if cavity[y0 : y0 + h, x0 : x0 + w][m].all():
                delta = float(rng.uniform(-self.intensity, self.intensity))
                return {"paste": (pix, m, int(y0), int(x0), delta)}
        return {"paste": None}

    def apply(self, img: np.ndarray, paste: Any = None, **params: Any) -> np.ndarray:
        if paste is None:
            return img
        pix, m, y0, x0, delta = paste
        h, w = m.shape
        out = img.copy()
        region = out[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
        region = region if region.ndim == 3 else region[..., None]
        lesion = pix.astype(np.float32)
        lesion[m] = np.clip(lesion[m] + delta, 1, BONE - 1)
        # alpha 1 on the lesion, a feathered rim (Gaussian, sigma 1 px) outside it
        alpha = np.maximum(cv2.GaussianBlur(m.astype(np.float32), (5, 5), 1.0), m)[..., None]
        blended = alpha * lesion[..., : region.shape[-1]] + (1 - alpha) * region
        out[y0 : y0 + h, x0 : x0 + w] = np.rint(blended).astype(img.dtype).reshape(out[y0 : y0 + h, x0 : x0 + w].shape)
        return out

    def apply_to_mask(self, mask: np.ndarray, paste: Any = None, **params: Any) -> np.ndarray:
        if paste is None:
            return mask
        _, m, y0, x0, _ = paste
        out = mask.copy()
        h, w = m.shape
        out[y0 : y0 + h, x0 : x0 + w][m] = 1
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale", "intensity", "tries")
