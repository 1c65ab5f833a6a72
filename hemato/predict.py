"""One patient's scan in, a volume report out.

    python -m hemato.predict --input PATH --output DIR [--checkpoint CKPT]
        [--spacing ROW_MM COL_MM] [--slice-spacing MM] [--intensity auto|hu|windowed]
        [--series UID] [--device cpu] [--tta] [--batch-size 16]

PATH: a DICOM series folder or one multi-frame DICOM file, a NIfTI file, a folder of PNG/JPG slices (sorted by the number
in their names) or a manifest ``slices.csv`` of one patient. CKPT (default: the model shipped
in ``hemato/weights/``, trained on real head CT): a hemato checkpoint (``.ckpt``), packed
weights (``hemato.weights``), both loaded without executing code, or an ONNX export
(``.onnx``, onnxruntime). The model's contract (window, input size, threshold, component
filter) is applied as stored with it (``hemato.engine``).

DIR receives ``report.json``, ``report.csv`` (one row), ``slices.csv`` (per-slice areas), the
predicted mask in the input's geometry (``mask.nii.gz`` for NIfTI/DICOM, ``mask/*.png`` for
slices) and ``overlays/*.png`` for every slice with bleed. Everything is computed first and
written through a temporary folder, so an error never leaves a partial report.
Without pixel spacing or slice spacing (secondary captures, exported PNGs) the volume is
"unavailable: spacing unknown" unless ``--spacing``/``--slice-spacing`` are given; areas in
pixels are still reported. A spacing is never guessed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

import hemato

if TYPE_CHECKING:  # pandas only for cohorts: a single prediction does not pay its import
    import pandas as pd
from hemato.data.readers.dicom import nifti_affine
from hemato.data.readers.errors import InputError
from hemato.data.readers.images import IMAGE_SUFFIXES, read_slice
from hemato.engine import Contract, candidates, confidence, label_bleeds, segment
from hemato.inference import Forward, onnx_forward, onnx_session, set_threads, torch_forward
from hemato.metrics.volume import abc2, volume_from_areas_ml
from hemato.models.registry import available, build_model
from hemato.privacy import pseudonym
from hemato.rundir import write_atomic
from hemato.scan_checks import intensity_flags, intensity_profile, not_a_head


# ------------------------------------------------------------------------------ model
@dataclass
class LoadedModel:
    """A network ready for inference, from a checkpoint or an ONNX file."""

    forward: Forward
    input_size: int
    identity: dict[str, Any]
    net: torch.nn.Module | None = None  # the torch network (None for ONNX)
    contract: Contract | None = None  # preprocessing + post-processing the weights expect

    def __post_init__(self) -> None:
        if self.contract is None:
            self.contract = Contract(input_size=self.input_size, trained_on="unknown (no contract stored)")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(
    path: str | Path, device: str = "cpu", channels_last: bool | None = None, precision: str = "32"
) -> LoadedModel:
    """Load a hemato ``.ckpt`` (``torch.load(weights_only=True)``: no code runs) or ``.onnx``.

    ``channels_last`` (torch only; default: on for CPU, where oneDNN's convolutions are
    faster in that layout, see ``hemato.bench``). ``precision``: ``32``, ``bf16`` or
    ``auto`` (bf16 where the CPU has native bf16 and a short probe finds it faster; the
    choice and reason are in ``identity["precision"]``); ONNX models run in fp32."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint does not exist")
    ident: dict[str, Any] = {"checkpoint": str(path), "sha256": _sha256(path)}
    if path.suffix.lower() == ".onnx":
        try:
            sess = onnx_session(path)
        except Exception as e:
            raise InputError(path, f"not a readable ONNX model ({e.__class__.__name__})") from None
        inp = sess.get_inputs()[0]
        meta = sess.get_modelmeta().custom_metadata_map
        size = inp.shape[-1]
        if not isinstance(size, int) or "hemato_model" not in meta:
            raise InputError(path, "not a hemato ONNX export (no hemato metadata or fixed input size)")
        ident.update({"format": "onnx", "model": json.loads(meta["hemato_model"]), "input_size": size})
        con = contract_from(json.loads(meta["hemato_contract"]) if "hemato_contract" in meta else None, size, 0.5)
        ident["contract"] = con.as_dict()
        ident["precision"] = {"precision": "32-true", "reason": "ONNX runs in fp32"}
        return LoadedModel(onnx_forward(sess), size, ident, contract=con)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(
            path,
            f"not a loadable checkpoint, or it holds code/objects that are refused ({e.__class__.__name__}: {str(e)[:120]})",
        ) from None
    if isinstance(ckpt, dict) and ckpt.get("format") == "hemato-weights/1":
        nets, con = _load_packed(path, ckpt, ident)
        return _torch_model(nets, con, ident, device, channels_last, precision)
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or not isinstance(hp.get("model"), dict) or hp["model"].get("name") not in available():
        raise InputError(path, "not a hemato model checkpoint (no hemato model configuration)")
    size = hp.get("input_size")
    if not isinstance(size, int):
        raise InputError(path, "checkpoint does not record the network's input size")
    kwargs = {k: v for k, v in hp["model"].items() if k != "_target_"}
    net = build_model(**kwargs, weights_follow=True)
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(path, f"weights do not fit the model configuration ({str(e)[:120]})") from None
    con = contract_from(hp.get("contract"), size, float(hp.get("threshold", 0.5)))
    ident.update({"format": "lightning-checkpoint", "model": kwargs, "input_size": size, "contract": con.as_dict()})
    return _torch_model([net], con, ident, device, channels_last, precision)


def _precision_request(precision: str, device: str) -> str:
    """``--precision`` as a Lightning-style request; bf16 on a CPU without native bf16 is
    refused (emulated bf16 is much slower). On a GPU, predict's ``auto`` is fp32."""
    from hemato.precision import native_bf16

    req = {"32": "32-true", "fp32": "32-true", "bf16": "bf16-mixed", "auto": "auto"}.get(str(precision))
    if req is None:
        raise InputError(Path(str(precision)), "--precision must be auto, 32 or bf16")
    if not str(device).startswith("cpu") and req == "auto":
        req = "32-true"
    if req == "bf16-mixed" and str(device).startswith("cpu") and not native_bf16():
        raise InputError(
            Path("bf16"),
            "--precision bf16 on a CPU without native bf16 (AVX512-BF16/AMX-BF16): emulated bf16 is much slower; use auto or 32",
        )
    return req


def _ensemble(nets: list[torch.nn.Module], device: str, channels_last: bool, bf16: bool) -> Forward:
    """One forward for one network, or the mean of several networks' probabilities (as logits)."""
    fwds = [torch_forward(n, device, channels_last, fold_bn=True, bf16=bf16) for n in nets]
    if len(fwds) == 1:
        return fwds[0]

    def ens(x: torch.Tensor) -> torch.Tensor:
        return torch.logit(torch.stack([torch.sigmoid(f(x)) for f in fwds]).mean(0), eps=1e-6)

    ens.size_divisor = fwds[0].size_divisor  # type: ignore[attr-defined]
    return ens


def _torch_model(
    nets: list[torch.nn.Module],
    con: Contract,
    ident: dict[str, Any],
    device: str,
    channels_last: bool | None,
    precision: str,
) -> LoadedModel:
    """The loaded torch network(s) with their forward at the chosen precision (``auto``: by
    capability and a probe, ``hemato.precision``); the choice goes to ``identity["precision"]``.
    Each precision's forward is built once, only if needed."""
    from hemato.precision import choose_precision, probe_inference_speed

    req = _precision_request(precision, device)
    cl = str(device).startswith("cpu") if channels_last is None else channels_last
    built: dict[bool, Forward] = {}

    def forward(bf16: bool) -> Forward:
        if bf16 not in built:
            built[bf16] = _ensemble(nets, device, cl, bf16)
        return built[bf16]

    choice = choose_precision(
        req,
        "cpu" if str(device).startswith("cpu") else "gpu",
        lambda: probe_inference_speed(forward(False), forward(True), con.input_size, in_channels=2 * con.context + 1),
    )
    ident["precision"] = choice.as_dict()
    return LoadedModel(
        forward(choice.precision == "bf16-mixed"), con.input_size, ident, nets[0] if len(nets) == 1 else None, con
    )


def _load_packed(path: Path, blob: dict[str, Any], ident: dict[str, Any]) -> tuple[list[torch.nn.Module], Contract]:
    """A ``hemato.weights`` file's networks (one, or an ensemble's members) and contract."""
    cfg = blob.get("model")
    if not isinstance(cfg, dict) or cfg.get("name") not in available() or not blob.get("members"):
        raise InputError(path, "hemato weights file without a known network or members")
    try:
        con = Contract.from_dict(blob["contract"])
    except (TypeError, ValueError) as e:
        raise InputError(path, f"bad model contract ({e})") from None
    nets = []
    for state in blob["members"]:
        net = build_model(**cfg, weights_follow=True)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise InputError(path, f"weights do not fit the model configuration ({str(e)[:120]})") from None
        nets.append(net)
    ident.update(
        {
            "format": "hemato-weights",
            "model": cfg,
            "input_size": con.input_size,
            "members": len(nets),
            "contract": con.as_dict(),
            "provenance": blob.get("provenance", {}),
        }
    )
    return nets, con


def contract_from(stored: dict[str, Any] | None, input_size: int, threshold: float) -> Contract:
    """The contract a checkpoint stores; checkpoints from before contracts get the values
    every hemato model then used (window 40/120, no component filter, radiological)."""
    base = {"input_size": input_size, "threshold": threshold}
    if not stored:
        return Contract(
            **base, orientation="radiological", trained_on="unknown (checkpoint predates hemato's model contract)"
        )
    return Contract.from_dict({**base, **stored})


# ------------------------------------------------------------------------------ input
@dataclass
class Scan:
    """One patient's slices (Z, H, W) uint8 with geometry and where it came from."""

    image: np.ndarray
    spacing_mm: tuple[float, float] | None
    thickness_mm: float | None
    kind: str
    source: dict[str, str] = field(default_factory=dict)
    slice_names: list[str] = field(default_factory=list)
    nifti_ref: Any = None  # (original image, canonical image) for writing the mask back
    slice_numbers: list[int] | None = None  # slice numbers of a slice folder / manifest (gap check)
    slice_extents_mm: np.ndarray | None = None  # per-slice extents when the slice spacing varies
    dicom_geometry: dict[str, Any] | None = None


NO_BLEED_FOUND = "no_bleed_found"  # volume_status when the model counted no bleed: not "ok", not "no bleed"


LOWER_BOUND = "lower_bound"  # volume_status when a bleed reaches the end of the scan or the field of view
EDGE_MARGIN_PX = 2  # a bleed within this many pixels of the frame's edge is cut by the field of view


def coverage_cut(mask: np.ndarray, slice_names: list[str]) -> dict[str, Any] | None:
    """Where a (Z, H, W) bleed mask reaches the end of what was scanned: its first or last
    slice, or within :data:`EDGE_MARGIN_PX` of the frame's edge (rows: anterior/top,
    posterior/bottom as displayed). Returns ``{"reason", "slices", "edges"}`` or None when
    the bleeds lie inside the scan: a bleed cut there is measured only in part."""
    if not mask.any():
        return None
    ends = [k for k in sorted({0, mask.shape[0] - 1}) if mask[k].any()]
    m = EDGE_MARGIN_PX
    edges = [
        name
        for name, part in (
            ("top", mask[:, :m, :]),
            ("bottom", mask[:, -m:, :]),
            ("left", mask[:, :, :m]),
            ("right", mask[:, :, -m:]),
        )
        if part.any()
    ]
    if not ends and not edges:
        return None
    parts = []
    if ends:
        parts.append(
            "a bleed reaches the scan's "
            + " and ".join(("first" if k == 0 else "last") + f" slice ({slice_names[k]})" for k in ends)
        )
    if edges:
        parts.append(f"a bleed reaches the {', '.join(edges)} edge of the field of view")
    return {
        "reason": "; ".join(parts) + ": it may go on beyond what was scanned",
        "slices": [slice_names[k] for k in ends],
        "edges": edges,
    }


def missing_slices(numbers: list[int] | None) -> list[int]:
    """Slice numbers absent between the first and the last of ``numbers`` (empty when
    consecutive or unknown): a stack with gaps would give a partial volume."""
    if not numbers or len(numbers) < 2:
        return []
    have = set(numbers)
    return [k for k in range(min(numbers), max(numbers) + 1) if k not in have]


def _slice_number(p: Path) -> int | None:
    """The last integer in a file name's stem (``IM_0012`` -> 12), or None."""
    nums = re.findall(r"\d+", p.stem)
    return int(nums[-1]) if nums else None


def _natural_key(p: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem))


INTENSITY = ("auto", "hu", "windowed")


def _to_window(values: np.ndarray, path: Path, level: float, width: float, intensity: str) -> np.ndarray:
    """HU (or, with ``intensity="windowed"``, 8-bit values already in the model's window)
    -> (Z, H, W) uint8 in the model's window. ``auto`` refuses values that are not HU."""
    from hemato.data.readers.intensity import check_ct_values, window_hu

    if intensity not in INTENSITY:
        raise InputError(path, f"--intensity must be one of {', '.join(INTENSITY)}, got {intensity!r}")
    if intensity == "windowed":
        lo, hi = float(values.min()), float(values.max())
        if lo < 0 or hi > 255:
            raise InputError(path, f"--intensity windowed, but the values span {lo:g}..{hi:g}, not 0..255")
        return np.rint(values).astype(np.uint8)
    check_ct_values(values, path, intensity)
    return window_hu(values, level, width)


def bleed_geometry(mask: np.ndarray, scan: Scan, bleeds: tuple[np.ndarray, int] | None = None) -> list[dict[str, Any]]:
    """Per bleed (3D component of the mask, largest first; ``bleeds`` = its
    :func:`hemato.engine.label_bleeds`, if already computed): voxels, volume (ml, where the
    spacing is known), centroid (slice, row, col) and in mm from the first slice's corner,
    and its slice of largest area; for matching bleeds between two scans."""
    from scipy import ndimage

    labels, n = bleeds if bleeds is not None else label_bleeds(mask)
    out = []
    sp = scan.spacing_mm
    h = scan.thickness_mm
    for lab, box in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        sel = labels[box] == lab
        z, r, c = (float(v) + b.start for v, b in zip(ndimage.center_of_mass(sel), box))
        areas = np.zeros(labels.shape[0], np.int64)
        areas[box[0]] = sel.reshape(sel.shape[0], -1).sum(1)
        vox = int(sel.sum())
        out.append(
            {
                "voxels": vox,
                "volume_ml": vox * sp[0] * sp[1] * h / 1000.0 if sp and h else None,
                "centroid_index": [z, r, c],
                "centroid_mm": [z * h, r * sp[0], c * sp[1]] if sp and h else None,
                "largest_slice": int(np.argmax(areas)),
            }
        )
    return sorted(out, key=lambda b: -b["voxels"])


def input_qc(
    scan: Scan, min_slices: int = 10, trained_spacing_mm: float = 5.0, profile: dict[str, Any] | None = None
) -> list[str]:
    """Input quality flags (the model is not refused, the reader is told): few slices, a
    slice spacing far from the training data's (ct-ich: 5 mm), a non-square slice field
    (:func:`field_stretch`; past :data:`MAX_FIELD_STRETCH` it is refused), intensities or
    noise outside the training scans' span (:func:`hemato.scan_checks.intensity_flags` of
    ``profile``, computed when not given)."""
    flags = []
    z = scan.image.shape[0]
    if z < min_slices:
        flags.append(f"only {z} slices: the scan may not cover the whole head")
    if scan.thickness_mm and not 0.5 * trained_spacing_mm <= scan.thickness_mm <= 2 * trained_spacing_mm:
        flags.append(
            f"slice spacing {scan.thickness_mm:g} mm is outside the range the model was trained on (~{trained_spacing_mm:g} mm)"
        )
    field, pixels = field_stretch(scan.image.shape[1:], scan.spacing_mm)
    if field > FLAG_STRETCH:
        flags.append(
            f"the slice field is {field:.2f}:1 (non-square pixels or grid): the network, trained on square slices, sees the head stretched {100 * (field - 1):.0f} %"
        )
    if pixels > FLAG_STRETCH:
        flags.append(f"non-square pixels ({pixels:.2f}:1): the network was trained on square pixels")
    flags += intensity_flags(profile if profile is not None else intensity_profile(scan.image))
    return flags


MAX_FIELD_STRETCH = 1.5  # beyond this the network would see a head squashed past recognition: refused
MAX_PIXEL_ASPECT = 2.0  # beyond this one in-plane axis is too coarse (a reslice of another plane): refused
FLAG_STRETCH = 1.05  # beyond this (field or pixels) the report flags it


def field_stretch(shape_hw: tuple[int, int], spacing_mm: tuple[float, float] | None) -> tuple[float, float]:
    """``(field, pixels)``: how much the network's square input stretches a slice of
    ``shape_hw`` pixels at ``spacing_mm`` (row, col; square pixels assumed when unknown), as
    the ratio of its longer to its shorter physical side (1.0 = a square field, as every
    training slice was), and the ratio of its coarser to its finer pixel side."""
    sr, sc = spacing_mm or (1.0, 1.0)
    h, w = shape_hw[0] * sr, shape_hw[1] * sc
    return max(h, w) / min(h, w), max(sr, sc) / min(sr, sc)


def check_field(scan: Scan, path: str | Path) -> None:
    """Refuse a slice the network would see distorted: each slice is resized to the model's
    square input, as in training, so a strongly non-square field would reach it squashed
    (> :data:`MAX_FIELD_STRETCH`), and strongly non-square pixels (> :data:`MAX_PIXEL_ASPECT`:
    the axial reslice of a coronal or sagittal acquisition, e.g. 5 x 0.5 mm) with one axis
    too coarse; its mask, not its geometry, would be wrong."""
    field, pixels = field_stretch(scan.image.shape[1:], scan.spacing_mm)
    size = f"slices of {scan.image.shape[1]} x {scan.image.shape[2]} pixels"
    if scan.spacing_mm:
        size += f" of {scan.spacing_mm[0]:g} x {scan.spacing_mm[1]:g} mm"
    if pixels > MAX_PIXEL_ASPECT:
        raise InputError(
            path,
            f"{size}: pixels {pixels:.1f}x longer one way than the other (a coronal or sagittal acquisition "
            "resliced to axial?); the network was trained on axial slices with square pixels: give the axial series",
        )
    if field > MAX_FIELD_STRETCH:
        raise InputError(
            path,
            f"{size}: a {field:.1f}:1 field that the network (trained on square slices) would see squashed "
            f"{field:.1f}x; give whole axial slices",
        )


def check_device(device: str) -> str:
    """``cpu``, or a CUDA device that exists; anything else is a one-line error."""
    d = str(device)
    if d == "cpu":
        return d
    if d.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(Path(d), "--device cuda, but this torch build sees no CUDA GPU (use --device cpu)")
        return d
    raise InputError(Path(d), "--device must be cpu or cuda[:N]")


def _slice_prefix(p: Path) -> str:
    """The name before the slice number (``077_13`` -> ``077_``; ``13`` -> ``''``)."""
    m = re.match(r"^(.*?)(\d+)\D*$", p.stem)
    return m.group(1) if m else p.stem


def read_scan(
    path: str | Path,
    level: float = 40.0,
    width: float = 120.0,
    intensity: str = "auto",
    series_uid: str | None = None,
    manifest_patient: str | None = None,
    assume_ct: bool = False,
) -> Scan:
    """Read a DICOM folder, a NIfTI file, a folder of slices or a one-patient manifest.

    HU inputs (DICOM, NIfTI) are windowed with ``level``/``width`` (the model's contract);
    their values must look like HU unless ``intensity`` says otherwise (``hu`` = trust them,
    ``windowed`` = already 8-bit in that window). A folder holding DICOM files is read as
    DICOM (other files in it are skipped and listed)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "input does not exist")
    name = path.name.lower()
    if path.is_file() and (name.endswith(".nii") or name.endswith(".nii.gz")):
        import nibabel as nib

        from hemato.data.readers.nifti import read_nifti

        values, spacing, slice_spacing, _ = read_nifti(path)
        orig = nib.load(str(path))
        return Scan(
            _to_window(values, path, level, width, intensity),
            spacing,
            slice_spacing,
            "nifti",
            {"spacing": "NIfTI header", "thickness": "NIfTI affine (distance between slice planes)"},
            [str(k) for k in range(values.shape[0])],
            (orig, nib.as_closest_canonical(orig)),
        )
    if path.is_file() and name.endswith(".csv"):
        from hemato.data.manifest import load_manifest

        recs = load_manifest(path, require_masks=False, read_masks=False)
        if manifest_patient is not None:
            recs = [r for r in recs if r.patient_id == manifest_patient]
            if not recs:
                raise InputError(path, f"no patient {manifest_patient!r} in the manifest")
        if len(recs) != 1:
            ids = ", ".join(r.patient_id for r in recs[:8]) + (" ..." if len(recs) > 8 else "")
            raise InputError(path, f"manifest lists {len(recs)} patients ({ids}); pick one with --patient ID")
        r = recs[0]
        return Scan(
            r.image,
            r.spacing_mm,
            r.thickness_mm,
            "slices",
            {
                "spacing": "manifest" if r.spacing_mm else "unknown",
                "thickness": "manifest" if r.thickness_mm else "unknown",
            },
            [str(i) for i in r.slice_index],
            slice_numbers=[int(i) for i in r.slice_index],
        )
    from hemato.data.readers.dicom import folder_has_dicom, is_dicom_file, read_dicom_series

    if path.is_dir() or is_dicom_file(path):
        if path.is_file() or folder_has_dicom(path):  # a series folder, or one (multi-frame) file
            hu, spacing, slice_spacing, _pos, geo = read_dicom_series(
                path, with_geometry=True, series_uid=series_uid, assume_ct=assume_ct
            )
            src = {
                "spacing": "DICOM PixelSpacing" if spacing else "unknown",
                "thickness": (
                    "DICOM slice positions"
                    if geo["uniform"]
                    else "DICOM slice positions (two or more slice spacings: per-slice extents)"
                )
                if geo["order"] == "ImagePositionPatient"
                else "unknown (no ImagePositionPatient: slices ordered by InstanceNumber)",
            }
            if geo.get("modality") not in (None, "CT"):
                src["modality"] = f"{geo['modality']} read as CT (--assume-ct)"
            if geo.get("kernel_kind") == "sharp":
                raise InputError(
                    path,
                    f"series {geo['series_uid']} is a sharp-kernel reconstruction (ConvolutionKernel {geo['kernel']}): "
                    "the model was trained on soft-tissue (brain) reconstructions and misses bleeds in bone-kernel noise; "
                    "give the soft-kernel series of this scan",
                )
            if geo.get("kernel"):
                src["kernel"] = f"{geo['kernel']} ({geo['kernel_kind'] or 'unknown kind'})"
            if geo.get("series_choice"):
                src["series"] = f"{geo['series_uid']}: {geo['series_choice']}"
            scan = Scan(
                _to_window(hu, path, level, width, intensity),
                spacing,
                slice_spacing,
                "dicom",
                src,
                [str(k) for k in range(hu.shape[0])],
                dicom_geometry=geo,
            )
            if geo["order"] == "ImagePositionPatient" and not geo["uniform"]:
                scan.slice_extents_mm = np.asarray(geo["slice_extents_mm"], float)
            return scan
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not files:
            raise InputError(path, "no DICOM files and no PNG/JPG slices in the folder")
        prefixes = sorted({_slice_prefix(f) for f in files})
        nums = [_slice_number(f) for f in files]
        if len(prefixes) > 1:
            shown = ", ".join(repr(p.rstrip("_-. ")) for p in prefixes[:6]) + (" ..." if len(prefixes) > 6 else "")
            raise InputError(
                path,
                f"slices of {len(prefixes)} patients ({shown}): give one patient's folder (or a one-patient manifest)",
            )
        if None not in nums and len(set(nums)) != len(nums):
            raise InputError(path, "repeated slice numbers: the folder holds more than one scan")
        imgs = []
        for f in files:
            img = read_slice(f)
            if imgs and img.shape != imgs[0].shape:
                raise InputError(f, f"size {img.shape} differs from the other slices {imgs[0].shape}")
            imgs.append(img)
        return Scan(
            np.stack(imgs),
            None,
            None,
            "slices",
            {"spacing": "unknown", "thickness": "unknown"},
            [f.stem for f in files],
            slice_numbers=None if None in nums else nums,
        )
    raise InputError(path, "not a DICOM folder, NIfTI file, slice folder or manifest")


# ------------------------------------------------------------------------------ report
def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows (same keys) -> a CSV with a header; None is an empty cell."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _overlay(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    cnts, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, cnts, -1, (0, 0, 255), 1)
    return rgb


def _write_mask_nifti(scan: Scan, mask: np.ndarray, path: Path) -> None:
    import nibabel as nib

    if scan.nifti_ref is not None:
        orig, canon = scan.nifti_ref
        data = np.transpose(mask[:, ::-1, ::-1], (2, 1, 0)).astype(np.uint8)  # back to canonical (x, y, z)
        tr = nib.orientations.ornt_transform(nib.io_orientation(canon.affine), nib.io_orientation(orig.affine))
        data = nib.orientations.apply_orientation(data, tr)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data), orig.affine), str(path))
        return
    affine = nifti_affine(scan.dicom_geometry or {}, scan.spacing_mm, scan.thickness_mm, mask.shape[0])
    data = np.transpose(mask, (2, 1, 0)).astype(np.uint8)  # (col, row, slice)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def detection_limit(probs: np.ndarray, mask: np.ndarray, n_kept: int, con: Contract, scan: Scan) -> dict[str, Any]:
    """The contract's smallest reportable bleed on this scan's grid (native voxels, and ml
    where the spacings are known), and the candidate 3D regions (``probs`` above the
    threshold, (Z, H, W)) that its component rules left out of ``mask`` (``n_kept`` bleeds):
    how many, their voxels together and the largest one's (and ml where known)."""
    vox = int(np.ceil(con.min_component_px / con.grid_scale(*probs.shape[-2:], scan.spacing_mm)))
    vox_ml = None
    if scan.spacing_mm is not None and scan.thickness_mm is not None:
        vox_ml = scan.spacing_mm[0] * scan.spacing_mm[1] * scan.thickness_mm / 1000.0
    labels, n_raw = label_bleeds(candidates(probs, con, scan.image, scan.spacing_mm))
    dropped = labels[(labels > 0) & ~mask]
    sizes = np.bincount(dropped)[1:] if dropped.size else np.zeros(0, int)
    sizes = sizes[sizes > 0]
    total, largest = int(sizes.sum()), int(sizes.max()) if sizes.size else 0
    return {
        "native_voxels": vox,
        "ml": None if vox_ml is None else vox * vox_ml,
        "min_component_hu": con.min_component_hu,
        "min_component_peak": con.min_component_peak,
        "dropped_regions": max(n_raw - n_kept, 0),
        "dropped_voxels": total,
        "dropped_largest_voxels": largest,
        "dropped_ml": None if vox_ml is None else total * vox_ml,
        "dropped_largest_ml": None if vox_ml is None else largest * vox_ml,
    }


def sensitivity_summary(identity: dict[str, Any]) -> str:
    """The model's out-of-fold share of bleeds found by bleed size, from its packed
    provenance (``validation.found_by_size``), in words; says so when it was not recorded."""
    v = (identity.get("provenance") or {}).get("validation") or {}
    by = v.get("found_by_size")
    if not by:
        return "this model's out-of-fold sensitivity by bleed size is not recorded with it"
    parts = [f"{b['found']} of {b['n']} bleeds {b['size']}" for b in by if b["n"]]
    return f"out of fold it found {', '.join(parts)} ({v.get('found_rule', 'found: Dice >= 0.2')})"


def _dropped_warning(dl: dict[str, Any], con: Contract) -> str:
    """The warning on candidate regions the bleed rules did not count: how many, how big
    together and the largest, and the rules they fell under."""
    if dl["dropped_ml"] is not None:
        size = f"together {dl['dropped_ml']:.2f} ml, the largest {dl['dropped_largest_ml']:.2f} ml"
        limit = f"{dl['ml']:.2f} ml"
    else:
        size = f"together {dl['dropped_voxels']} voxels, the largest {dl['dropped_largest_voxels']}"
        limit = f"{dl['native_voxels']} voxels"
    rules = [f"at least {limit}"]
    if con.min_component_hu is not None:
        rules.append(f"a mean of at least {con.min_component_hu:g} HU")
    if con.min_component_peak:
        rules.append(f"a highest probability of at least {con.min_component_peak:g}")
    return (
        f"{dl['dropped_regions']} candidate region(s) ({size}) are not counted: the model's bleed rules need "
        + " and ".join(rules)
        + "; they may be bleeds this model missed: look at them"
    )


def validation_summary(identity: dict[str, Any]) -> str | None:
    """One line of the model's cross-validated figures, from its packed provenance (None for
    a model without them)."""
    v = (identity.get("provenance") or {}).get("validation")
    if not v:
        return None
    lo, hi = v.get("dice_patient_ci") or (float("nan"), float("nan"))
    return (
        f"out of fold on {v['n_patients_with_bleed'] + v['n_patients_without_bleed']} patients of its training data's "
        f"collection: per-patient Dice {v['dice_patient']:.2f} [{lo:.2f}, {hi:.2f}] on the {v['n_patients_with_bleed']} "
        f"with bleed, {v['fp_patients']} of {v['n_patients_without_bleed']} bleed-free patients given a bleed "
        "(docs/model_card.md; research use, not a medical device)"
    )


def default_checkpoint() -> Path:
    """The model shipped in ``hemato/weights/``, or a one-line refusal while none ships."""
    from hemato.weights import NO_DEFAULT_REASON, default_model_path

    path = default_model_path()
    if not path.is_file():
        raise InputError(Path("--checkpoint"), NO_DEFAULT_REASON)
    return path


def input_fingerprint(path: str | Path) -> str:
    """SHA-256 over the input's files' names, sizes and modification times (a cheap identity:
    a batch resumes past a scan only if its input is unchanged)."""
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if p.is_dir() else f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def scans_in(folder: Path) -> list[Path]:
    """One scan per entry of a cohort folder: sub-folders (DICOM or slices), NIfTI files,
    one-patient manifests, multi-frame DICOM files; sorted by name, hidden entries skipped."""
    from hemato.data.readers.dicom import is_dicom_file

    out = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        n = p.name.lower()
        if p.is_dir() or n.endswith((".nii", ".nii.gz", ".csv")) or is_dicom_file(p):
            out.append(p)
    return out


def predict_cohort(
    checkpoint: str | Path | None,
    input_dir: str | Path,
    output: str | Path,
    keep_names: bool = False,
    progress: bool = True,
    **kw: Any,
) -> pd.DataFrame:
    """Every scan of ``input_dir`` into ``output/<name>/`` with one model load, and
    ``output/summary.csv`` (one row per scan: status ok / error with its one-line message /
    done before). A scan whose report exists for the same input (fingerprint) is not redone,
    so an interrupted batch resumes. Folder names are pseudonymised unless ``keep_names``."""
    import pandas as pd

    src, out = Path(input_dir), Path(output)
    if not src.is_dir():
        raise InputError(src, "--input-dir must be a folder of scans")
    scans = scans_in(src)
    if not scans:
        raise InputError(src, "no scans (sub-folders, NIfTI files or manifests) in the folder")
    out.mkdir(parents=True, exist_ok=True)
    if checkpoint is None:
        checkpoint = default_checkpoint()
    model = load_model(checkpoint, kw.get("device", "cpu"), precision=kw.pop("precision", "32"))
    rows = []
    it = scans
    if progress:
        from tqdm import tqdm

        it = tqdm(scans, desc="scans", unit="scan")
    for scan in it:
        name = _input_name(scan) if keep_names else pseudonym(_input_name(scan))
        dest = out / name
        row: dict[str, Any] = {"scan": name, "input": str(scan) if keep_names else None}
        try:
            done = dest / "report.json"
            if done.is_file() and json.loads(done.read_text()).get("input", {}).get("fingerprint") == input_fingerprint(
                scan
            ):
                r, row["status"] = json.loads(done.read_text()), "done before"
            else:
                r = predict(checkpoint, scan, dest, keep_names=keep_names, patient_id=name, loaded=model, **kw)
                row["status"] = "ok"
            a = r.get("abc2") or {}
            row.update(
                {
                    "volume_ml": r["volume_ml"],
                    "volume_status": r["volume_status"],
                    "abc2_ml": a.get("volume_ml"),
                    "n_bleeds": a.get("n_bleeds"),
                    "n_bleed_slices": r["n_bleed_slices"],
                    "n_slices": r["n_slices"],
                    "error": None,
                }
            )
        except InputError as e:
            row.update({"status": "error", "error": str(e)})
        rows.append(row)
    table = pd.DataFrame(rows)
    write_atomic(out / "summary.csv", table.to_csv(index=False))
    return table


def _input_name(path: str | Path) -> str:
    return Path(path).name.removesuffix(".gz").removesuffix(".nii")


def predict(
    checkpoint: str | Path | None,
    input: str | Path,
    output: str | Path,
    spacing: tuple[float, float] | None = None,
    thickness: float | None = None,
    device: str = "cpu",
    tta: bool = False,
    batch_size: int = 16,
    threshold: float | None = None,
    patient_id: str | None = None,
    progress: bool = False,
    keep_names: bool = False,
    crop: bool = True,
    threads: int | None = None,
    intensity: str = "auto",
    series_uid: str | None = None,
    precision: str = "32",
    loaded: LoadedModel | None = None,
    dicom_seg: bool = False,
    manifest_patient: str | None = None,
    assume_ct: bool = False,
    dicom_sr: bool = False,
) -> dict[str, Any]:
    """Segment one scan and write the report into ``output``; returns the report dict.

    ``dicom_seg``: for DICOM input, also write ``seg.dcm``, the mask as a DICOM Segmentation
    referencing the source series (it carries the source's patient identifiers);
    ``dicom_sr``: also ``sr.dcm``, the report's volumes, ABC/2 per bleed and flags as a
    DICOM Structured Report (TID 1500) referencing that SEG (written too) and the series.
    ``loaded``: a model already loaded (by :func:`load_model`, e.g. once for a cohort);
    ``checkpoint`` is then only its name in the report.

    ``thickness`` is the SLICE SPACING in mm (distance between slice centres, which is what
    a planimetric volume needs; on overlapping reconstructions it is smaller than the
    nominal slice thickness). ``intensity``: ``auto`` (HU inputs must look like HU),
    ``hu`` or ``windowed`` (see :func:`read_scan`); ``series_uid`` picks a DICOM series;
    ``assume_ct`` measures DICOM secondary captures (Modality OT/SC) as CT in HU.

    ``crop`` runs the network on the head region only and skips slices without head
    (``hemato.inference``; torch checkpoints only, ONNX graphs have a fixed size); ``threads``
    defaults to the physical cores.

    The report names the patient ``patient_id`` if given, else a salted pseudonym of the
    input's name (``hemato.privacy``), or the input's name itself with ``keep_names``."""
    n_threads = set_threads(threads)
    device = check_device(device)
    out = Path(output)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "report.json").is_file())):
        raise InputError(
            out, "output exists and is not an empty folder or an earlier hemato report: give a new or empty folder"
        )
    if checkpoint is None and loaded is None:
        checkpoint = default_checkpoint()
    model = loaded if loaded is not None else load_model(checkpoint, device, precision=precision)
    con = model.contract
    if threshold is not None:
        con = Contract.from_dict({**con.as_dict(), "threshold": float(threshold)})
    scan = read_scan(input, con.window_level, con.window_width, intensity, series_uid, manifest_patient, assume_ct)
    crop = bool(crop and con.crop_to_head and getattr(model.forward, "size_divisor", None) is not None)
    warnings = []
    if "phantom" in con.trained_on:
        warnings.append(
            f"the model was trained on a {con.trained_on}: its volumes on real CT are not validated (the default model is trained on real CT)"
        )
    if spacing is not None:
        if len(spacing) != 2 or min(spacing) <= 0:
            raise InputError(input, f"--spacing must be two positive mm values, got {spacing}")
        scan.spacing_mm, scan.source["spacing"] = (float(spacing[0]), float(spacing[1])), "--spacing"
    if thickness is not None:
        if not thickness > 0:
            raise InputError(input, f"--slice-spacing must be positive mm, got {thickness}")
        scan.thickness_mm, scan.source["thickness"] = float(thickness), "--slice-spacing"
        scan.slice_extents_mm = None

    if "modality" in scan.source:
        warnings.append(f"the series' Modality is {scan.source['modality']}: the user vouches that it is CT in HU")
    check_field(scan, input)
    why = not_a_head(scan.image, scan.spacing_mm, (scan.dicom_geometry or {}).get("body_part"))
    if why:
        raise InputError(input, why)
    probs, mask = segment(
        model.forward,
        scan.image,
        con,
        batch_size=batch_size,
        tta=tta,
        progress=progress,
        crop=crop,
        spacing_mm=scan.spacing_mm,
    )
    bleeds = label_bleeds(mask)  # labelled once for the confidence, the bleed geometry and ABC/2
    conf = confidence(probs, con, bleeds=bleeds, images=scan.image, spacing_mm=scan.spacing_mm, mask=mask)
    profile = intensity_profile(scan.image, con.window_level, con.window_width)
    qc = input_qc(scan, profile=profile)
    area_px = mask.reshape(mask.shape[0], -1).sum(1)
    extents = scan.slice_extents_mm
    known = scan.spacing_mm is not None and (scan.thickness_mm is not None or extents is not None)
    gaps = missing_slices(scan.slice_numbers)
    # one manifest holds many patients: the patient picked is part of the scan's name
    name = _input_name(input) + (f":{manifest_patient}" if manifest_patient else "")
    report: dict[str, Any] = {
        "patient": patient_id or (name if keep_names else pseudonym(name)),
        "volume_ml": None,
        "volume_status": "ok",
        "abc2": None,
        "n_bleed_slices": int((area_px > 0).sum()),
        "n_slices": int(mask.shape[0]),
        "spacing_mm": list(scan.spacing_mm) if scan.spacing_mm else None,
        "slice_spacing_mm": scan.thickness_mm if extents is None else [round(float(e), 4) for e in extents],
        "geometry_source": scan.source,
        "input": {
            "path": str(input) if keep_names else None,
            "kind": scan.kind,
            "shape": list(scan.image.shape),
            "fingerprint": input_fingerprint(input),
        },
        "model": model.identity,
        "model_trained_on": con.trained_on,
        "model_validation": validation_summary(model.identity),
        "warnings": warnings,
        "confidence": conf,
        "input_qc": qc,
        "intensity": profile,
        "patient_key": (scan.dicom_geometry or {}).get("patient_key"),
        "bleeds": bleed_geometry(mask, scan, bleeds),
        "threshold": con.threshold,
        "contract": con.as_dict(),
        "tta": tta,
        "inference": {
            "crop_to_head": crop,
            "device": "cpu (onnxruntime CPU provider)" if model.identity.get("format") == "onnx" else device,
            "threads": n_threads,
            "precision": model.identity.get("precision"),
        },
        "software": {"hemato": hemato.__version__, "torch": torch.__version__},
    }
    px_area = scan.spacing_mm[0] * scan.spacing_mm[1] if scan.spacing_mm else None
    slices = [
        {"slice": name, "area_px": int(a), "area_mm2": (float(a) * px_area if px_area else None)}
        for name, a in zip(scan.slice_names, area_px)
    ]
    if known and extents is not None:  # two or more slice spacings: each slice's own extent
        report["volume_ml"] = float(sum(s["area_mm2"] * e for s, e in zip(slices, extents)) / 1000.0)
        report["volume_status"] = "ok (per-slice extents: the series has more than one slice spacing)"
        report["abc2"] = None  # ABC/2's C assumes one spacing
    elif known:
        report["volume_ml"] = volume_from_areas_ml([s["area_mm2"] for s in slices], scan.thickness_mm)
        report["abc2"] = abc2(mask, scan.spacing_mm, scan.thickness_mm, bleeds=bleeds)
    else:
        missing = [
            k for k, v in (("pixel spacing", scan.spacing_mm), ("slice spacing", scan.thickness_mm)) if v is None
        ]
        report["volume_status"] = (
            f"volume unavailable: {' and '.join(missing)} unknown (give --spacing/--slice-spacing)"
        )
    report["detection_limit"] = detection_limit(probs, mask, bleeds[1], con, scan)
    if report["detection_limit"]["dropped_regions"]:
        warnings.append(_dropped_warning(report["detection_limit"], con))
    if bleeds[1] == 0:  # nothing counted: a finding of this model, never "no bleed"
        report["finding"] = f"no bleed found by this model: {sensitivity_summary(model.identity)}"
        if known:
            report["volume_status"] = NO_BLEED_FOUND
    else:
        report["finding"] = f"{bleeds[1]} bleed(s) found by this model"
    cut = coverage_cut(mask, scan.slice_names)
    report["coverage"] = cut
    if cut and report["volume_ml"] is not None:  # the bleed goes on beyond what was scanned
        report["volume_status"] = LOWER_BOUND
        warnings.append(f"the volume is a lower bound: {cut['reason']}")
    if gaps:
        report["volume_ml"], report["abc2"] = None, None
        shown = ", ".join(map(str, gaps[:8])) + (" ..." if len(gaps) > 8 else "")
        report["volume_status"] = (
            f"volume refused: the scan is incomplete, slice numbers {shown} are missing between the first and the last slice"
        )

    # write everything into a temporary folder, then put it in place of the output folder
    # whole (an earlier report there is replaced entirely: no stale mask or overlay remains)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "overlays").mkdir()
        for k in np.flatnonzero(area_px):
            cv2.imwrite(str(tmp / "overlays" / f"slice_{scan.slice_names[k]}.png"), _overlay(scan.image[k], mask[k]))
        if scan.kind in ("nifti", "dicom"):
            _write_mask_nifti(scan, mask, tmp / "mask.nii.gz")
        if dicom_seg or dicom_sr:
            if scan.kind != "dicom":
                raise InputError(input, f"--dicom-{'sr' if dicom_sr else 'seg'} needs a DICOM series as input")
            from hemato.dicom_seg import write_dicom_seg

            write_dicom_seg(
                scan.dicom_geometry["datasets"],
                mask,
                tmp / "seg.dcm",
                model_name=str(model.identity.get("model", {}).get("name", "hemato")),
                frames=scan.dicom_geometry.get("frames"),
            )
        else:
            (tmp / "mask").mkdir()
            for k, name in enumerate(scan.slice_names):
                cv2.imwrite(str(tmp / "mask" / f"{name}.png"), mask[k].astype(np.uint8) * 255)
        _write_csv(tmp / "slices.csv", slices)
        a = report["abc2"] or {}
        row = {
            "patient": report["patient"],
            "volume_ml": report["volume_ml"],
            "volume_status": report["volume_status"],
            "abc2_ml": a.get("volume_ml"),
            "A_mm": a.get("A_mm"),
            "B_mm": a.get("B_mm"),
            "C_mm": a.get("C_mm"),
            "n_bleed_slices": report["n_bleed_slices"],
            "slice_areas_mm2": ";".join("" if s["area_mm2"] is None else f"{s['area_mm2']:.2f}" for s in slices),
            "slice_areas_px": ";".join(str(s["area_px"]) for s in slices),
            "spacing_row_mm": scan.spacing_mm[0] if scan.spacing_mm else None,
            "spacing_col_mm": scan.spacing_mm[1] if scan.spacing_mm else None,
            "slice_spacing_mm": scan.thickness_mm,
            "spacing_source": scan.source.get("spacing"),
            "slice_spacing_source": scan.source.get("thickness"),
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": model.identity["sha256"],
            "hemato_version": hemato.__version__,
        }
        _write_csv(tmp / "report.csv", [row])
        report["slices"] = slices
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        if dicom_sr:
            from hemato.dicom_sr import write_dicom_sr

            write_dicom_sr(report, scan.dicom_geometry["datasets"], tmp / "seg.dcm", tmp / "sr.dcm")
        from hemato.report.scan_page import render_scan_page

        (tmp / "report.html").write_text(
            render_scan_page(report, sorted((tmp / "overlays").glob("*.png"), key=_natural_key))
        )
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
            out.replace(old)
        tmp.replace(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hemato.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--checkpoint",
        help="hemato .ckpt, .onnx or packed weights (default: the shipped real-CT model, hemato/weights/)",
    )
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="DICOM folder, NIfTI file, slice folder or slices.csv")
    src.add_argument(
        "--dicomweb",
        metavar="URL",
        help="a DICOMweb service root: fetch --study's CT series (or --series) with WADO-RS; credentials from "
        "HEMATO_DICOMWEB_TOKEN or HEMATO_DICOMWEB_USER/_PASSWORD, never in the URL",
    )
    src.add_argument(
        "--input-dir",
        help="a cohort: one scan per sub-folder / NIfTI file / manifest; one report folder each + summary.csv; resumes",
    )
    ap.add_argument("--output", required=True, help="report folder (with --input-dir: the cohort's folder)")
    ap.add_argument(
        "--spacing", nargs=2, type=float, metavar=("ROW_MM", "COL_MM"), help="pixel spacing (overrides the file's)"
    )
    ap.add_argument(
        "--slice-spacing",
        "--thickness",
        dest="thickness",
        type=float,
        metavar="MM",
        help="slice spacing: distance between slice centres in mm (overrides the file's; --thickness is an old name for it)",
    )
    ap.add_argument(
        "--intensity",
        choices=INTENSITY,
        default="auto",
        help="DICOM/NIfTI values: auto = must look like HU (else refused), hu = trust them as HU, windowed = 8-bit already in the model's window",
    )
    ap.add_argument(
        "--assume-ct",
        action="store_true",
        help="DICOM secondary captures (Modality OT/SC) hold CT slices in HU: measure them (refused otherwise)",
    )
    ap.add_argument("--series", help="DICOM SeriesInstanceUID to use when the folder holds several series")
    ap.add_argument("--study", help="with --dicomweb: the StudyInstanceUID to fetch")
    ap.add_argument(
        "--stow", action="store_true", help="with --dicomweb: store seg.dcm + sr.dcm back with STOW-RS (implies both)"
    )
    ap.add_argument("--patient", help="the patient to take from a manifest (slices.csv) of several")
    ap.add_argument(
        "--dicom-seg",
        action="store_true",
        help="DICOM input: also write seg.dcm, a DICOM Segmentation referencing the series (opens in 3D Slicer/OHIF; it carries the patient's identifiers)",
    )
    ap.add_argument(
        "--dicom-sr",
        action="store_true",
        help="DICOM input: also write sr.dcm, a DICOM Structured Report (TID 1500) of the volumes, ABC/2 per bleed and flags, "
        "referencing seg.dcm (written too) and the series",
    )
    ap.add_argument(
        "--precision",
        choices=["auto", "32", "bf16"],
        default="32",
        help="32 (default): a volume in fp32; auto: bf16 where the CPU has native bf16 and a probe finds it faster "
        "(faster, but on a real-CT model bf16 changed masks by Dice 0.97 and volumes by up to 14%%: docs/performance.md)",
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tta", action="store_true", help="average with flipped inputs")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--no-crop",
        action="store_true",
        help="run the network on the full frame of every slice (default: head region only, slices without head skipped)",
    )
    ap.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    ap.add_argument(
        "--patient-id", help="name to print in the report (default: a salted pseudonym of the input's name)"
    )
    ap.add_argument(
        "--keep-names", action="store_true", help="report the input's own name and path instead of a pseudonym"
    )
    a = ap.parse_args(argv)
    # the options every scan is predicted with, alone or in a cohort
    common = {
        "keep_names": a.keep_names,
        "spacing": a.spacing,
        "thickness": a.thickness,
        "device": a.device,
        "tta": a.tta,
        "batch_size": a.batch_size,
        "crop": not a.no_crop,
        "threads": a.threads,
        "intensity": a.intensity,
        "precision": a.precision,
        "assume_ct": a.assume_ct,
    }
    if a.input_dir:
        try:
            t = predict_cohort(a.checkpoint, a.input_dir, a.output, **common)
        except InputError as e:
            print(f"hemato.predict: error: {e}", file=sys.stderr)
            return 2
        for _, row in t[t["status"] == "error"].iterrows():
            print(f"hemato.predict: {row['scan']}: error: {row['error']}", file=sys.stderr)
        n = t["status"].value_counts().to_dict()
        print(
            f"{len(t)} scans: {n.get('ok', 0)} predicted, {n.get('done before', 0)} done before, {n.get('error', 0)} failed -> {a.output}/summary.csv"
        )
        return 0 if not n.get("error") else 1
    if (a.study or a.stow) and not a.dicomweb:
        ap.error("--study and --stow go with --dicomweb")
    if a.dicomweb and not a.study:
        ap.error("--dicomweb needs --study")
    fetched = Path(tempfile.mkdtemp(prefix="hemato-dicomweb-")) if a.dicomweb else None
    try:
        if fetched is not None:
            from hemato import dicomweb

            a.input = fetched / (a.series or a.study)
            dicomweb.retrieve(a.dicomweb, a.study, a.input, a.series)
        r = predict(
            a.checkpoint,
            a.input,
            a.output,
            patient_id=a.patient_id,
            progress=True,
            series_uid=a.series,
            dicom_seg=a.dicom_seg or a.stow,
            dicom_sr=a.dicom_sr or a.stow,
            manifest_patient=a.patient,
            **common,
        )
        if a.stow:
            dicomweb.store(a.dicomweb, [Path(a.output) / "seg.dcm", Path(a.output) / "sr.dcm"])
            print(f"hemato.predict: stored seg.dcm + sr.dcm to {a.dicomweb} (study {a.study})", file=sys.stderr)
    except InputError as e:
        print(f"hemato.predict: error: {e}", file=sys.stderr)
        return 2
    finally:
        if fetched is not None:
            shutil.rmtree(fetched, ignore_errors=True)
    for w in r.get("warnings", []):
        print(f"hemato.predict: warning: {w}", file=sys.stderr)
    if r.get("model_validation"):
        print(f"hemato.predict: model: {r['model_validation']}", file=sys.stderr)
    vol = f"{r['volume_ml']:.2f} ml" if r["volume_ml"] is not None else r["volume_status"]
    if r.get("finding", "").startswith("no bleed found"):
        vol = f"{vol} ({r['finding']})"
    abc = (
        f", ABC/2 {r['abc2']['volume_ml']:.2f} ml ({r['abc2']['n_bleeds']} bleed{'s' if r['abc2']['n_bleeds'] != 1 else ''})"
        if r["abc2"]
        else ""
    )
    print(
        f"{r['patient']}: {vol}{abc}, {r['n_bleed_slices']} of {r['n_slices']} slices with bleed -> {a.output}/report.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
