"""The one inference engine: a model's preprocessing contract and the scan -> mask path.

Every caller that turns a scan into a mask (the run's test evaluation, cross-validation
reports, ``hemato.predict``, ``hemato.bench``) calls :func:`segment` with the model's
:class:`Contract`, so the numbers a run reports are the numbers a user gets.

Path: HU (or 8-bit slices already in the contract's window) -> window -> (Z, H, W) uint8
-> head crop -> resize to ``input_size`` -> network -> sigmoid -> back to the native grid
-> ``> threshold`` -> 3D components dropped that are smaller than ``min_component_px``, whose
highest probability is below ``min_component_peak`` or whose mean intensity is below
``min_component_hu``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage

from hemato.inference import Forward, find_head, intracranial_mask, predict_probabilities

ORIENTATIONS = ("any", "radiological", "ctich")


@dataclass(frozen=True)
class Contract:
    """What a model expects and how its output becomes a mask; saved with the weights.

    Attributes:
        input_size: network input side (pixels); every slice is resized to it.
        window_level, window_width: the brain window (HU) the model was trained on; HU
            inputs (DICOM, NIfTI) are windowed with it, 8-bit inputs must already be.
        threshold: probability threshold of the mask.
        min_component_px: 3D connected components (26-connected) whose voxel count, in
            network-grid pixels (native count x (input_size/H) x (input_size/W)), is below
            this are dropped; 0 keeps everything.
        orientation: ``any`` = trained with 90-degree rotations and flips (works in every
            in-plane orientation); ``radiological`` / ``ctich`` = the one it was trained on.
        crop_to_head: run the network on the head's bounding box only.
        trained_on: the training data, in words (reports print it).
        context: neighbouring slices on each side given to the network as extra input
            channels (2.5D; 0 = one slice, the paper's 2D input). The network takes
            ``2 * context + 1`` channels: slices z-context..z+context of the scan's slice
            order, the first / last slice repeated at the ends.
        tta: average the probabilities of the identity and the horizontal and vertical flips.
        min_component_peak: 3D components whose highest probability is below this are
            dropped (0 keeps every component; e.g. 0.99 keeps only bleeds the network is sure
            of somewhere).
        min_component_hu: 3D components whose mean intensity, in HU through the contract's
            window, is below this are dropped (``None`` keeps all). Acute blood is ~50-90 HU;
            a component that averages brain (~30-40 HU) or CSF is not one. Hypodense (chronic)
            bleeds are dropped too: a stated limit of a contract that sets it.
        intracranial: drop predicted pixels outside the intracranial cavity (per slice: the
            filled skull ring, :func:`hemato.inference.intracranial_mask`, widened by
            ``INTRACRANIAL_MARGIN`` network-grid pixels so bleeds against the inner table are
            kept); slices without a closed skull ring (skull base, vertex) are left as
            predicted. Scalp swellings and bone edges are not intracranial bleeds.
        field_mm: the physical side (mm) of the training slices' square field, e.g. 230.4
            for ct-ich's 512 px at an assumed 0.45 mm. With it, a scan whose pixel spacing is
            known is first cut or padded (with air, never resampled) to a square field of this
            size around the head (:func:`reframe`), so the network sees every head at the
            size it was trained at, whatever the scanner's field of view; ``None`` (or an
            unknown spacing): the whole slice is resized to ``input_size``, as in training.
    """

    input_size: int
    window_level: float = 40.0
    window_width: float = 120.0
    threshold: float = 0.5
    min_component_px: int = 0
    orientation: str = "any"
    crop_to_head: bool = True
    trained_on: str = "unknown"
    context: int = 0
    tta: bool = False
    min_component_peak: float = 0.0
    min_component_hu: float | None = None
    intracranial: bool = False
    field_mm: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.input_size, int) and self.input_size > 0 and self.input_size % 32 == 0):
            raise ValueError(f"input_size must be a positive multiple of 32, got {self.input_size!r}")
        if self.field_mm is not None and not self.field_mm > 0:
            raise ValueError(f"field_mm must be positive mm or None, got {self.field_mm!r}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.window_width <= 0:
            raise ValueError(f"window_width must be positive HU, got {self.window_width}")
        if self.min_component_px < 0:
            raise ValueError(f"min_component_px must be >= 0, got {self.min_component_px}")
        if not 0 <= self.min_component_peak < 1:
            raise ValueError(f"min_component_peak must be in [0, 1), got {self.min_component_peak}")
        if not (isinstance(self.context, int) and self.context >= 0):
            raise ValueError(f"context must be an integer >= 0, got {self.context!r}")
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {self.orientation!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def grid_scale(self, h: int, w: int, spacing_mm: tuple[float, float] | None = None) -> float:
        """Network-grid pixels per native pixel of an (H, W) slice (of ``spacing_mm`` row,
        col, when known): the unit of ``min_component_px``. With ``field_mm`` and a known
        spacing, a native pixel is ``input_size * spacing / field_mm`` network pixels each way."""
        if self.field_mm is not None and spacing_mm is not None:
            return (self.input_size * spacing_mm[0] / self.field_mm) * (self.input_size * spacing_mm[1] / self.field_mm)
        return (self.input_size / h) * (self.input_size / w)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Contract:
        """From a stored dict; unknown keys are refused (a newer format is not guessed at)."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown contract fields {sorted(unknown)}")
        return cls(**d)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["tta=true", "min_component_hu=55"]`` (command-line ``FIELD=VALUE``, YAML values) ->
    a dict of contract fields; :meth:`Contract.from_dict` then refuses unknown ones."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"contract override {item!r}: expected FIELD=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def label_bleeds(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """3D connected components (26-connected) of a (Z, H, W) bool mask: ``(labels int32
    (Z, H, W), n)``. The one definition of "a bleed" used by the component filter, the
    confidence, the bleed geometry and ABC/2; callers that need several of them label once
    and pass the result on."""
    labels, n = ndimage.label(np.asarray(mask, bool), structure=np.ones((3, 3, 3), bool))
    return labels, int(n)


def window_to_hu(values: np.ndarray | float, contract: Contract) -> np.ndarray | float:
    """Windowed 8-bit intensities (0..255) -> HU through the contract's window (values at
    the window's ends stand for anything beyond them)."""
    lo = contract.window_level - contract.window_width / 2
    return lo + np.asarray(values, np.float64) * (contract.window_width / 255.0)


def component_features(
    labels: np.ndarray,
    n: int,
    contract: Contract,
    probs: np.ndarray | None = None,
    images: np.ndarray | None = None,
    spacing_mm: tuple[float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Per 3D component 1..n of ``labels`` ((Z, H, W), from :func:`label_bleeds`), arrays of
    length n: ``voxels`` (native) and ``grid_px`` (network-grid pixels); with ``probs``
    ((Z, H, W)) ``peak``, their highest value; with ``images`` (windowed uint8, (Z, H, W))
    ``mean_hu``, their mean through the contract's window (``spacing_mm``: the scan's pixel
    spacing, for :meth:`Contract.grid_scale`). What the component rules and ``hemato.cv
    calibrate`` judge a component by."""
    idx = np.arange(1, n + 1)
    vox = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    out = {"voxels": vox, "grid_px": vox * contract.grid_scale(*labels.shape[-2:], spacing_mm)}
    if probs is not None:
        out["peak"] = np.asarray(ndimage.maximum(probs, labels, idx), float).reshape(n)
    if images is not None:
        out["mean_hu"] = np.asarray(window_to_hu(np.asarray(ndimage.mean(images, labels, idx)), contract), float)
    return out


def filter_components(
    mask: np.ndarray,
    probs: np.ndarray,
    images: np.ndarray | None,
    contract: Contract,
    spacing_mm: tuple[float, float] | None = None,
) -> np.ndarray:
    """The contract's component rules on a (Z, H, W) bool mask: 3D components (26-connected)
    are dropped when smaller than ``min_component_px`` network-grid pixels, when their
    highest probability (``probs``, (Z, H, W)) is below ``min_component_peak``, or when the
    mean of ``images`` (windowed uint8, (Z, H, W)) over them is below ``min_component_hu``.
    Returns a new bool array."""
    mask = np.asarray(mask, bool)
    use_peak, use_hu = contract.min_component_peak > 0, contract.min_component_hu is not None
    if not mask.any() or (contract.min_component_px <= 0 and not use_peak and not use_hu):
        return mask.copy()
    if use_hu and (images is None or images.shape != mask.shape):
        raise ValueError("the contract's min_component_hu needs the windowed images the mask was predicted from")
    labels, n = label_bleeds(mask)
    f = component_features(labels, n, contract, probs if use_peak else None, images if use_hu else None, spacing_mm)
    keep = np.zeros(n + 1, bool)
    keep[1:] = f["grid_px"] >= contract.min_component_px
    if use_peak:
        keep[1:] &= f["peak"] >= contract.min_component_peak
    if use_hu:
        keep[1:] &= f["mean_hu"] >= contract.min_component_hu
    return keep[labels]


INTRACRANIAL_MARGIN = 2  # network-grid pixels the cavity is widened by (contract.intracranial)


def intracranial_region(
    images: np.ndarray, contract: Contract, spacing_mm: tuple[float, float] | None = None
) -> np.ndarray:
    """(Z, H, W) bool: where the contract's ``intracranial`` rule lets a bleed be: each
    slice's cavity widened by :data:`INTRACRANIAL_MARGIN` network-grid pixels, or the whole
    slice when it has no closed skull ring."""
    z, h, w = images.shape
    r = max(1, round(INTRACRANIAL_MARGIN / np.sqrt(contract.grid_scale(h, w, spacing_mm))))
    disk = np.hypot(*np.mgrid[-r : r + 1, -r : r + 1]) <= r
    out = np.ones((z, h, w), bool)
    for k in range(z):
        cav = intracranial_mask(images[k])
        if cav.any():
            out[k] = ndimage.binary_dilation(cav, structure=disk)
    return out


def candidates(
    probs: np.ndarray,
    contract: Contract,
    images: np.ndarray | None = None,
    spacing_mm: tuple[float, float] | None = None,
) -> np.ndarray:
    """(Z, H, W) bool: ``probs`` above the threshold, within the ``intracranial`` region when
    the contract sets it (``images``: the windowed uint8 slices): what the component rules
    judge."""
    mask = probs > contract.threshold
    if contract.intracranial and mask.any():
        if images is None or images.shape != mask.shape:
            raise ValueError("the contract's intracranial rule needs the windowed images the mask was predicted from")
        mask &= intracranial_region(images, contract, spacing_mm)
    return mask


def postprocess(
    probs: np.ndarray,
    contract: Contract,
    images: np.ndarray | None = None,
    spacing_mm: tuple[float, float] | None = None,
) -> np.ndarray:
    """(Z, H, W) probabilities -> the contract's mask: :func:`candidates`, then
    :func:`filter_components` (``images``, the windowed uint8 slices, are needed when the
    contract sets ``min_component_hu`` or ``intracranial``)."""
    return filter_components(candidates(probs, contract, images, spacing_mm), probs, images, contract, spacing_mm)


@dataclass(frozen=True)
class Frame:
    """Where a square field cut from (or padded around) a scan's slices lies: scan rows and
    columns ``src`` = (y0, y1, x0, x1) are the frame's rows and columns from ``dst`` = (fy, fx);
    ``shape`` is the scan's (H, W), ``size`` the frame's (h, w) (native pixels)."""

    shape: tuple[int, int]
    size: tuple[int, int]
    src: tuple[int, int, int, int]
    dst: tuple[int, int]

    def _windows(self) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """(scan rows, cols), (frame rows, cols) of the part the two share."""
        y0, y1, x0, x1 = self.src
        fy, fx = self.dst
        return (slice(y0, y1), slice(x0, x1)), (slice(fy, fy + y1 - y0), slice(fx, fx + x1 - x0))

    def cut(self, images: np.ndarray) -> np.ndarray:
        """(Z, H, W) scan -> (Z, h, w) frame; outside the scan the frame is 0 (air in any window)."""
        (sy, sx), (fy, fx) = self._windows()
        out = np.zeros((images.shape[0], *self.size), images.dtype)
        out[:, fy, fx] = images[:, sy, sx]
        return out

    def back(self, frame: np.ndarray) -> np.ndarray:
        """(Z, h, w) frame -> (Z, H, W) on the scan's grid; 0 where the frame did not reach."""
        (sy, sx), (fy, fx) = self._windows()
        out = np.zeros((frame.shape[0], *self.shape), frame.dtype)
        out[:, sy, sx] = frame[:, fy, fx]
        return out


FIELD_TOL = 0.02  # a scan whose field is within 2 % of the contract's is left as is


def reframe(images: np.ndarray, spacing_mm: tuple[float, float] | None, contract: Contract) -> Frame | None:
    """The square field of ``contract.field_mm`` around the head of (Z, H, W) windowed slices
    of ``spacing_mm`` (row, col): cut where the scan's field of view is larger, padded with
    air where it is smaller, so the head reaches the network at its training size. None when
    the contract has no ``field_mm``, the spacing is unknown or no slice holds head. A head
    (box) larger than the field widens it rather than being cut. A scan whose field is within
    :data:`FIELD_TOL` of ``field_mm`` is left whole (None), as training saw its slices."""
    if contract.field_mm is None or spacing_mm is None:
        return None
    h, w = images.shape[1:]
    if all(
        abs(n * sp - contract.field_mm) <= FIELD_TOL * contract.field_mm
        for n, sp in ((h, spacing_mm[0]), (w, spacing_mm[1]))
    ):
        return None  # the scan's field is the training field already: whole slices, as in training
    box = find_head(images)
    if box is None:
        return None
    side = max(contract.field_mm, (box.y1 - box.y0) * spacing_mm[0], (box.x1 - box.x0) * spacing_mm[1])
    fh, fw = round(side / spacing_mm[0]), round(side / spacing_mm[1])
    cy, cx = (box.y0 + box.y1) // 2, (box.x0 + box.x1) // 2
    ty, tx = cy - fh // 2, cx - fw // 2  # the frame's top-left corner in scan pixels (may be < 0)
    y0, x0 = max(ty, 0), max(tx, 0)
    y1, x1 = min(ty + fh, h), min(tx + fw, w)
    return Frame((h, w), (fh, fw), (y0, y1, x0, x1), (y0 - ty, x0 - tx))


def segment(
    net: Any,
    images: np.ndarray,
    contract: Contract,
    batch_size: int = 16,
    tta: bool = False,
    progress: bool = False,
    crop: bool | None = None,
    channels_last: bool = False,
    fold_bn: bool = False,
    spacing_mm: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Windowed uint8 slices (Z, H, W) -> (probabilities float32, mask bool), both (Z, H, W).

    ``net`` is a torch network or a :data:`Forward`; ``crop`` defaults to the contract's
    (and is off for a fixed-size forward such as ONNX, which cannot take a cropped grid).
    ``spacing_mm`` (row, col): the scan's pixel spacing; with the contract's ``field_mm``
    the network sees the :func:`reframe` field, and the component rules count network
    pixels at that scale.
    """
    frame = reframe(images, spacing_mm, contract)
    if crop is None:
        crop = contract.crop_to_head
    if crop and not hasattr(net, "parameters") and getattr(net, "size_divisor", None) is None:
        crop = False
    probs = predict_probabilities(
        net,
        images if frame is None else frame.cut(images),
        contract.input_size,
        batch_size=batch_size,
        tta=tta or contract.tta,
        progress=progress,
        crop=crop,
        channels_last=channels_last,
        fold_bn=fold_bn,
        context=contract.context,
    )
    if frame is not None:
        probs = frame.back(probs)
    return probs, postprocess(probs, contract, images, spacing_mm)


UNSURE_SPREAD = 0.5  # a scan is "unsure" when its volume at thresholds 0.3 and 0.7 differs by more than this x its volume at the contract's threshold


def confidence(
    probs: np.ndarray,
    contract: Contract,
    low: float = 0.3,
    high: float = 0.7,
    spread: float = UNSURE_SPREAD,
    bleeds: tuple[np.ndarray, int] | None = None,
    images: np.ndarray | None = None,
    spacing_mm: tuple[float, float] | None = None,
    mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """How much the counted bleeds depend on the threshold, on the probability map itself:
    ``n_mid`` = the mask's voxels (the contract's threshold and bleed rules); ``n_low`` =
    voxels at p > ``low`` of the candidate regions that hold a counted bleed (before any
    rule: a rule applied at ``low`` could drop a grown region and hide the dependence);
    ``n_high`` = the mask's voxels at p > ``high``. Their relative spread
    ``(n_low - n_high) / n_mid`` makes the scan ``unsure`` above ``spread``, so a bleed that
    exists at one threshold only is unsure. A scan with no counted bleed is unsure when the
    rules keep a bleed at ``low``. Per bleed (3D components of the mask; ``bleeds`` =
    :func:`label_bleeds` of it, if already computed): its voxels and mean probability.
    ``images``: the windowed slices, needed when the contract sets ``min_component_hu``
    or ``intracranial``; ``mask``: the contract's mask of ``probs``, if already computed."""
    mid = mask if mask is not None else postprocess(probs, contract, images, spacing_mm)
    n_mid = int(mid.sum())
    low_con = Contract.from_dict({**contract.as_dict(), "threshold": low})
    if n_mid:
        lab_low, _ = label_bleeds(candidates(probs, low_con, images, spacing_mm))
        held = np.unique(lab_low[mid & (lab_low > 0)])
        n_low = int(np.isin(lab_low, held).sum())
    else:
        n_low = int(postprocess(probs, low_con, images, spacing_mm).sum())
    n_high = int((mid & (probs > high)).sum())
    rel = (n_low - n_high) / n_mid if n_mid else (float("inf") if n_low else 0.0)
    labels, k = bleeds if bleeds is not None else label_bleeds(mid)
    per_bleed = []
    for lab, box in enumerate(ndimage.find_objects(labels, max_label=k), start=1):
        sel = labels[box] == lab
        per_bleed.append({"voxels": int(sel.sum()), "mean_probability": float(probs[box][sel].mean())})
    return {
        "voxels_at": {str(low): n_low, str(contract.threshold): n_mid, str(high): n_high},
        "relative_spread": float(rel),
        "unsure": bool(rel > spread),
        "rule": (
            f"unsure when (voxels at p>{low} of the regions holding a counted bleed - counted voxels at p>{high}) "
            f"/ counted voxels > {spread}"
        ),
        "bleeds": sorted(per_bleed, key=lambda b: -b["voxels"]),
    }


def scan_counts(pred: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per-slice pixel counts (Z,) of intersection, prediction and truth (native grid)."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    z = p.shape[0]
    return {
        "inter": (p & t).reshape(z, -1).sum(1),
        "pred": p.reshape(z, -1).sum(1),
        "gt": t.reshape(z, -1).sum(1),
    }


__all__ = [
    "Contract",
    "Forward",
    "candidates",
    "confidence",
    "component_features",
    "filter_components",
    "label_bleeds",
    "parse_overrides",
    "postprocess",
    "scan_counts",
    "segment",
    "window_to_hu",
]
