"""PNG/JPG slices and mask images (OpenCV), strictly checked."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hemato.data.readers.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _decode(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(path, "file does not exist")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise InputError(path, "empty file")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(path, "not a readable image (corrupt or truncated?)")
    if path.suffix.lower() in (".jpg", ".jpeg") and not data[-2:].tobytes() == b"\xff\xd9":
        raise InputError(path, "truncated JPEG (no end-of-image marker)")
    if path.suffix.lower() == ".png" and b"IEND" not in data[-16:].tobytes():
        raise InputError(path, "truncated PNG (no IEND chunk)")
    return img


def read_slice(path: str | Path) -> np.ndarray:
    """One windowed grey slice (H, W) uint8. Grey-looking RGB (R=G=B, as JPG exports) is
    accepted; colour images, 16-bit images and images with NaN are refused."""
    path = Path(path)
    img = _decode(path)
    if img.dtype != np.uint8:
        raise InputError(
            path, f"{img.dtype} image: slices must be 8-bit windowed grey (give HU data as NIfTI or DICOM)"
        )
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        spread = int(img.max(axis=2).astype(np.int16).max() - 0) if img.size else 0
        diff = np.abs(img.astype(np.int16) - img[:, :, :1].astype(np.int16)).max()
        if diff > 12 and spread:  # JPEG chroma noise on grey images stays small
            raise InputError(path, "colour image: expected a grey CT slice")
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if img.ndim != 2:
        raise InputError(path, f"unexpected image shape {img.shape}")
    return img


def read_mask(path: str | Path, mode: str = "binary") -> np.ndarray:
    """Mask image -> (H, W) bool.

    ``mode="binary"``: values must be {0, 255} or {0, 1} (anything else is an error, since a
    silently thresholded multi-class or anti-aliased mask gives a wrong volume);
    ``mode="nonzero"``: any non-black pixel is hemorrhage (e.g. BHSD's colour class masks).
    """
    path = Path(path)
    img = _decode(path)
    if mode == "nonzero":
        return (img.reshape(img.shape[0], img.shape[1], -1) > 0).any(axis=2)
    if mode != "binary":
        raise ValueError(f"mask mode must be 'binary' or 'nonzero', got {mode!r}")
    if img.ndim == 3:
        if (img != img[:, :, :1]).any():
            raise InputError(path, "colour mask: use mode='nonzero' (any class = hemorrhage) or a class mapping")
        img = img[:, :, 0]
    values = set(np.unique(img).tolist())
    if not values <= {0, 255} and not values <= {0, 1}:
        raise InputError(path, f"mask is not binary (values {sorted(values)[:6]}...); expected 0/255 or 0/1")
    return img > 0


def write_mask_pngs(mask: np.ndarray, names: list[str], folder: Path) -> None:
    """One PNG per slice of the (Z, H, W) ``mask`` (bleed 255, else 0), named ``<name>.png``:
    the mask of a slice-image input, in its own files' geometry."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        cv2.imwrite(str(folder / f"{name}.png"), mask[k].astype(np.uint8) * 255)
