"""DICOM series (pydicom): one patient's axial CT series from a folder.

What is read, and what is refused:

* Files that are not DICOM (a ``.txt``, a ``preview.jpg``, ``DICOMDIR``) are skipped.
* Images are grouped by SeriesInstanceUID and orientation. Localizers (ImageType
  ``LOCALIZER``) and single-image series beside a real series are skipped. One remaining
  series is used; with several, the only axial one is used, else the series are listed and
  ``series_uid`` must pick one.
* Modality must be CT where it is given; other modalities are refused. Secondary captures
  (Modality OT, or SC) of CT slices in HU are read only when the caller says so
  (``assume_ct``; ``hemato.predict --assume-ct``).
* The series must be axial (slice normal within ~37 degrees of the head's long axis, so
  tilted gantries pass); a coronal, sagittal or oblique series is refused, naming its plane.
* Slices are sorted by ImagePositionPatient projected on the slice normal (from
  ImageOrientationPatient), from the feet up whatever the normal's sign (feet-first series
  included): the order training used (ct-ich) and NIfTI's (RAS). The slice spacing is the distance between consecutive slice
  centres along the normal, so a tilted gantry gives the right spacing. Protocols with two
  spacings (e.g. 2.5 mm posterior fossa, 5 mm above) give per-slice extents: each slice
  reaches half-way to its neighbours. A missing slice (one isolated step differing from the
  steps on both sides) and duplicate positions are refused.
* Without ImagePositionPatient (secondary captures), slices are ordered by InstanceNumber
  and the spacing is unknown unless the user gives it.
* HU = stored value x RescaleSlope + RescaleIntercept. A compressed transfer syntax without
  an installed decoder is a one-line error naming it.
* Multi-frame images (Enhanced CT, Legacy Converted Enhanced CT: one file, many slices) are
  read frame by frame, each with its position, orientation, pixel spacing and rescale from
  its per-frame or shared functional groups, then checked and sorted like single files.

Identifying tags are read by nobody here: only geometry and pixel data leave this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hemato.data.readers.contract import Scan
from hemato.data.readers.dicom_kernel import kernel_kind, kernel_of
from hemato.data.readers.errors import InputError
from hemato.data.readers.geometry import nifti_affine, slice_extents_mm

# SOP classes that legitimately carry no pixel data and are skipped in a series folder:
# Media Storage Directory (DICOMDIR), structured reports and key objects, presentation
# states, encapsulated documents, RT structure sets
NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.1.3.10",
    "1.2.840.10008.5.1.4.1.1.88.",
    "1.2.840.10008.5.1.4.1.1.11.",
    "1.2.840.10008.5.1.4.1.1.104.",
    "1.2.840.10008.5.1.4.1.1.481.3",
)


@dataclass
class _Slice:
    path: Path
    ds: Any
    series: str
    iop: tuple[float, ...] | None
    ipp: list[float] | None
    localizer: bool
    frame: int | None = None  # 0-based frame of a multi-frame (enhanced) image; None: one slice per file


def _functional(ds: Any, frame: int | None, sequence: str, attr: str) -> Any:
    """``attr`` of the functional group ``sequence`` for ``frame`` of a multi-frame image
    (Enhanced / Legacy Converted Enhanced CT): the per-frame group first, then the shared
    one; for a single-frame file (``frame`` None) the top-level attribute. None if absent.
    Hand-written: highdicom's volume reader (>= 0.24) would bypass this reader's checks of
    each slice (gaps, duplicates, spacings), which then hold for both kinds alike."""
    if frame is not None:
        for groups, idx in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
            seq = getattr(ds, groups, None)
            if seq is None or len(seq) <= idx or sequence not in seq[idx]:
                continue
            items = getattr(seq[idx], sequence)
            if items and attr in items[0]:
                return getattr(items[0], attr)
    return getattr(ds, attr, None)


def _is_dicom_file(p: Path) -> bool:
    """DICOM Part 10 magic (``DICM`` at byte 128) or a ``.dcm`` suffix."""
    if p.suffix.lower() == ".dcm":
        return True
    try:
        with open(p, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_file(p: Path) -> bool:
    """Whether ``p`` is a file that reads as DICOM (``.dcm`` or the Part 10 magic)."""
    return Path(p).is_file() and _is_dicom_file(Path(p))


def folder_has_dicom(folder: Path) -> bool:
    """Whether ``folder`` holds at least one DICOM file (decides DICOM over a slice folder)."""
    return any(p.is_file() and not p.name.startswith(".") and _is_dicom_file(p) for p in folder.iterdir())


def _floats(v: Any, n: int) -> list[float] | None:
    try:
        out = [float(x) for x in v]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _check_steps(steps: np.ndarray, pos: np.ndarray, folder: Path, tolerance: float) -> bool:
    """True when uniform; False when it changes between runs of equal steps (two protocols);
    raises on an isolated odd step (a missing slice)."""
    h = float(np.median(steps))
    if not (np.abs(steps - h) > tolerance * max(h, 1.0)).any():
        return True
    tol = tolerance * max(h, 1.0)
    for k, s in enumerate(steps):
        same_prev = k > 0 and abs(steps[k - 1] - s) <= tol
        same_next = k + 1 < len(steps) and abs(steps[k + 1] - s) <= tol
        if not (same_prev or same_next):
            raise InputError(
                folder,
                f"missing or uneven slice: positions jump by {s:.2f} mm after {pos[k]:.2f} mm (neighbouring steps differ)",
            )
    return False


def _describe(group: list[_Slice]) -> str:
    ds = group[0].ds
    desc = str(getattr(ds, "SeriesDescription", "") or "").strip()
    return f"{group[0].series} ({len(group)} images{', ' + desc if desc else ''})"


AXIAL_MIN_COS = 0.8  # a slice normal within ~37 degrees of the head's long axis: axial (gantry tilts included)


def _axial(group: list[_Slice]) -> bool:
    iop = group[0].iop
    if iop is None:
        return False
    n = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))
    return bool(abs(n[2]) / (np.linalg.norm(n) + 1e-12) > AXIAL_MIN_COS)


def _plane(iop: tuple[float, ...]) -> str:
    """The plane of a slice orientation in words (its normal's dominant LPS axis)."""
    n = np.abs(np.cross(np.asarray(iop[:3]), np.asarray(iop[3:])))
    return ("sagittal", "coronal", "axial")[int(np.argmax(n))] if n.max() > 0.9 * np.linalg.norm(n) else "oblique"


CAPTURE_MODALITIES = ("OT", "SC")  # secondary captures: measured as CT only with assume_ct


def _parse_slices(f: Path, ds: Any, assume_ct: bool = False) -> list[_Slice] | str:
    """One file's slice records (one per frame of a multi-frame image), or why it is
    skipped; refuses non-CT (secondary captures unless ``assume_ct``) and image files
    without pixels."""
    if "PixelData" not in ds:
        sop = str(
            getattr(ds, "SOPClassUID", "")
            or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "")
            or ""
        )
        if not sop.startswith(NON_IMAGE_SOP_PREFIXES):  # an image (or unknown) file without pixels
            raise InputError(f, "DICOM file without pixel data (truncated?)")
        return f"{f.name}: no image (DICOMDIR, report or presentation state)"
    modality = str(getattr(ds, "Modality", "") or "")
    if modality in CAPTURE_MODALITIES and not assume_ct:
        raise InputError(
            f,
            f"Modality is {modality} (a secondary capture), not CT: if these are CT slices in HU, give --assume-ct",
        )
    if modality and modality != "CT" and modality not in CAPTURE_MODALITIES:
        raise InputError(f, f"Modality is {modality}, not CT: hemato measures head CT only")
    image_type = [str(v).upper() for v in (getattr(ds, "ImageType", None) or [])]
    series = str(getattr(ds, "SeriesInstanceUID", "") or "unknown")
    frames: list[int | None] = [None]
    if "PerFrameFunctionalGroupsSequence" in ds:  # multi-frame: one slice per frame
        n = int(getattr(ds, "NumberOfFrames", 1) or 1)
        if len(ds.PerFrameFunctionalGroupsSequence) != n:
            raise InputError(f, f"{len(ds.PerFrameFunctionalGroupsSequence)} per-frame groups for {n} frames")
        frames = list(range(n))
    elif int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        raise InputError(
            f, "a multi-frame image without per-frame positions (no functional groups): its geometry is unknown"
        )
    out = []
    for k in frames:
        iop_v = _functional(ds, k, "PlaneOrientationSequence", "ImageOrientationPatient")
        ipp_v = _functional(ds, k, "PlanePositionSequence", "ImagePositionPatient")
        iop = _floats(iop_v, 6) if iop_v is not None else None
        ipp = _floats(ipp_v, 3) if ipp_v is not None else None
        if (iop_v is not None and iop is None) or (ipp_v is not None and ipp is None):
            raise InputError(f, "malformed ImagePositionPatient/ImageOrientationPatient")
        if k is not None and (iop is None or ipp is None):
            raise InputError(f, f"frame {k + 1} of the multi-frame image has no plane position or orientation")
        out.append(_Slice(f, ds, series, tuple(iop) if iop else None, ipp, "LOCALIZER" in image_type, k))
    return out


def _kind(group: list[_Slice]) -> str | None:
    ds = group[0].ds
    return kernel_kind(kernel_of(ds), str(getattr(ds, "SeriesDescription", "") or ""))


def _by_kernel(cands: list[list[_Slice]]) -> tuple[list[list[_Slice]], str | None]:
    """Among several axial series (reconstructions of one scan), those a soft-tissue model
    should read: sharp kernels dropped while another remains, soft ones preferred to
    unknown ones; and why, in words (None when the kernels decided nothing)."""
    kinds = [_kind(g) for g in cands]
    keep = [g for g, k in zip(cands, kinds) if k != "sharp"] or cands
    soft = [g for g, k in zip(cands, kinds) if k == "soft"]  # never sharp: a subset of keep
    keep = soft or keep
    if len(keep) == len(cands):
        return cands, None
    dropped = [g for g in cands if not any(g is k for k in keep)]
    why = "; ".join(f"{_describe(g)}, kernel {kernel_of(g[0].ds) or 'unknown'}" for g in dropped)
    return keep, f"a {'soft-kernel' if soft else 'non-sharp'} reconstruction preferred to {why}"


def _select_series(slices: list[_Slice], folder: Path, series_uid: str | None) -> tuple[list[_Slice], str | None]:
    """The series to read, and why it was chosen over others (None: it was the only one,
    or the user's ``series_uid``)."""
    groups: dict[tuple, list[_Slice]] = {}
    for s in slices:
        key = (s.series, tuple(np.round(s.iop, 3)) if s.iop is not None else None)
        groups.setdefault(key, []).append(s)
    if series_uid is not None:
        chosen = [g for (uid, _), g in groups.items() if uid == series_uid]
        if not chosen:
            raise InputError(
                folder,
                f"series {series_uid} not found; series here: {'; '.join(_describe(g) for g in groups.values())}",
            )
        if len(chosen) > 1:
            raise InputError(folder, f"series {series_uid} mixes image orientations")
        return chosen[0], None
    cands = [g for g in groups.values() if not all(s.localizer for s in g)]
    if len(cands) > 1:
        multi = [g for g in cands if len(g) > 1]
        cands = multi or cands
    why = None
    if len(cands) > 1:
        axial = [g for g in cands if _axial(g)]
        if len(axial) == 1:
            cands = axial
        elif len(axial) > 1:
            cands, why = _by_kernel(axial)
    if not cands:
        raise InputError(folder, "only localizer images in the folder")
    if len(cands) > 1:
        raise InputError(
            folder, f"{len(cands)} image series: {'; '.join(_describe(g) for g in cands)}; choose one with --series UID"
        )
    return cands[0], why


def read_dicom_series(
    folder: str | Path,
    tolerance: float = 0.05,
    series_uid: str | None = None,
    assume_ct: bool = False,
) -> Scan:
    """``folder``: a series folder, or one DICOM file (a multi-frame image).

    Returns a :class:`~hemato.data.readers.contract.Scan`: ``image`` (Z, H, W) float64 HU
    sorted along the slice normal, pixel spacing (row, col) mm or None, slice spacing mm or
    None, ``positions_mm`` (Z,) along the normal, the RAS ``affine``, ``source`` (where each
    geometry value came from) and ``dicom_geometry``, a dict: ``orientation`` (6 floats), ``origin`` and ``last``
    (first/last ImagePositionPatient, LPS mm), ``slice_extents_mm`` (Z,), ``uniform``,
    ``series_uid``, ``modality``, ``body_part`` (BodyPartExamined, upper case, or None), ``order`` ("ImagePositionPatient" or "InstanceNumber"),
    ``skipped`` (files not used, with why), ``datasets`` (the used pydicom datasets, in
    slice order: for a DICOM SEG that references them), ``frames`` (for a multi-frame image,
    the 1-based frame number of each slice; else None). ``assume_ct``: read secondary
    captures (Modality OT/SC) as CT. The slice spacing is None when the spacings
    are not uniform (use the extents) or unknown."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    if folder.is_file() and _is_dicom_file(folder):  # one file: a multi-frame image (or a lone slice)
        files = [folder]
    elif not folder.is_dir():
        raise InputError(folder, "not a folder of DICOM files")
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(folder, "no files in the folder")
    skipped: list[str] = []
    slices: list[_Slice] = []
    for f in files:
        looks_dicom = _is_dicom_file(f)
        try:
            ds = pydicom.dcmread(f)
        except (InvalidDicomError, Exception) as e:
            if looks_dicom:  # a DICOM file that does not parse is corrupt, never skipped
                raise InputError(f, f"not a readable DICOM image ({e.__class__.__name__}: {str(e)[:80]})") from None
            skipped.append(f"{f.name}: not DICOM")  # a .txt, a preview.jpg
            continue
        try:  # pydicom parses elements lazily: a corrupt one raises only when it is read
            item = _parse_slices(f, ds, assume_ct)
        except InputError:
            raise
        except Exception as e:
            raise InputError(f, f"not a readable DICOM image ({e.__class__.__name__}: {str(e)[:80]})") from None
        if isinstance(item, str):
            skipped.append(item)
        else:
            slices.extend(item)
    if not slices:
        raise InputError(folder, f"no DICOM images in the folder ({len(skipped)} other files)")
    group, chosen_because = _select_series(slices, folder, series_uid)
    if group[0].iop is not None and not _axial(group):
        # hemato's networks segment axial slices: a coronal or sagittal reformat would be
        # segmented in a plane no model was trained on, and its volume reported as if right
        raise InputError(
            folder,
            f"series {_describe(group)} is {_plane(group[0].iop)} (ImageOrientationPatient {list(group[0].iop)}): "
            "hemato segments axial slices; give the axial series (--series UID) or an axial reconstruction",
        )
    used = {id(s) for s in group}
    skipped += [
        f"{s.path.name}: {'localizer' if s.localizer else 'other series ' + s.series}"
        for s in slices
        if id(s) not in used
    ]

    hus, spacings = [], set()
    for s in group:
        ds = s.ds
        try:
            arr = ds.pixel_array  # decoded once per file (pydicom keeps it), also for a multi-frame one
            if s.frame is not None and arr.ndim == 3:
                arr = arr[s.frame]
            arr = arr.astype(np.float64)
        except Exception as e:
            ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            name = getattr(ts, "name", str(ts)) if ts is not None else "unknown transfer syntax"
            try:
                plain = ts is not None and ts.is_transfer_syntax and not ts.is_compressed
            except (AttributeError, ValueError):  # not a transfer syntax UID at all
                plain = False
            if plain:  # nothing to decode: the data is bad
                raise InputError(s.path, f"pixel data cannot be read ({name}; {str(e)[:120]})") from None
            raise InputError(
                s.path,
                f"pixel data cannot be decoded ({name}; {e.__class__.__name__}): install pydicom's decoder plugins (pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg)",
            ) from None
        if arr.ndim != 2:
            raise InputError(s.path, f"expected one 2D slice per file, got shape {arr.shape}")
        try:  # lazily parsed elements of a corrupt file raise only here
            slope = float(_functional(ds, s.frame, "PixelValueTransformationSequence", "RescaleSlope") or 1.0)
            intercept = float(_functional(ds, s.frame, "PixelValueTransformationSequence", "RescaleIntercept") or 0.0)
            sp = _floats(_functional(ds, s.frame, "PixelMeasuresSequence", "PixelSpacing") or (), 2)
        except Exception as e:
            raise InputError(
                s.path, f"unreadable rescale or spacing values ({e.__class__.__name__}: {str(e)[:80]})"
            ) from None
        spacings.add(tuple(sp) if sp else ())
        if not all(np.isfinite(v) for v in [slope, intercept, *(sp or []), *(s.ipp or []), *(s.iop or [])]):
            raise InputError(s.path, "non-finite geometry or rescale values")
        hu = arr * slope + intercept
        if not np.isfinite(hu).all():
            raise InputError(s.path, "NaN/inf pixel values")
        hus.append(hu)
    shapes = {h.shape for h in hus}
    if len(shapes) > 1:
        raise InputError(folder, f"slices of different sizes {sorted(shapes)}")
    if len(spacings) > 1:
        raise InputError(folder, f"slices with different pixel spacings {sorted(spacings)}")
    sp_t = spacings.pop()
    spacing = (sp_t[0], sp_t[1]) if len(sp_t) == 2 and min(sp_t) > 0 else None
    modality = str(getattr(group[0].ds, "Modality", "") or "") or None

    have_pos = all(s.ipp is not None and s.iop is not None for s in group)
    try:
        pid = str(getattr(group[0].ds, "PatientID", "") or "")
    except Exception:
        pid = ""

    geo: dict[str, Any] = {
        "series_uid": group[0].series,
        "modality": modality,
        "body_part": str(getattr(group[0].ds, "BodyPartExamined", "") or "").strip().upper() or None,
        "kernel": kernel_of(group[0].ds) or None,
        "kernel_kind": _kind(group),
        "series_choice": chosen_because,
        "skipped": skipped,
        # a salted-free hash: equal for two scans of one patient, the ID itself never leaves
        "patient_key": hashlib.sha256(pid.encode()).hexdigest()[:16] if pid else None,
    }
    if not have_pos:
        inst = [getattr(s.ds, "InstanceNumber", None) for s in group]
        if len(group) > 1 and (None in inst or len(set(int(i) for i in inst)) != len(inst)):
            raise InputError(
                folder, "slices without ImagePositionPatient and without unique InstanceNumbers: their order is unknown"
            )
        order = np.argsort([int(i) for i in inst]) if len(group) > 1 else np.array([0])
        hu = np.stack([hus[i] for i in order])
        geo.update(
            {
                "order": "InstanceNumber",
                "orientation": None,
                "origin": None,
                "last": None,
                "slice_extents_mm": np.full(len(order), np.nan),
                "uniform": True,
                "datasets": [group[i].ds for i in order],
                "frames": None,
            }
        )
        return _scan(hu, spacing, None, np.full(len(order), np.nan), geo)
    orient = np.asarray(group[0].iop, dtype=np.float64)
    normal = np.cross(orient[:3], orient[3:])
    if not np.linalg.norm(normal) > 0.5:
        raise InputError(group[0].path, f"degenerate ImageOrientationPatient {orient.tolist()}")
    if normal[2] < 0:
        # feet-first (or flipped) series: their normal points to the feet. Slices always run
        # from the feet up, as in training (ct-ich) and NIfTI (RAS), so a 2.5D network gets
        # its neighbour channels in the order it learned
        normal = -normal
    pos = np.array([float(np.dot(np.asarray(s.ipp, float), normal)) for s in group])
    order = np.argsort(pos, kind="stable")
    pos = pos[order]
    steps = np.diff(pos)
    if len(steps) and (steps < tolerance).any():
        i = int(np.argmin(steps))
        raise InputError(
            folder,
            f"duplicate slice position {pos[i]:.2f} mm ({group[order[i]].path.name}, {group[order[i + 1]].path.name})",
        )
    uniform = True
    if len(steps):
        uniform = _check_steps(steps, pos, folder, tolerance)
        spacing_z = float(np.median(steps)) if uniform else None
        extents = slice_extents_mm(pos) if not uniform else np.full(len(pos), float(np.median(steps)))
    else:
        t = float(_functional(group[0].ds, group[0].frame, "PixelMeasuresSequence", "SliceThickness") or 0)
        spacing_z = t if t > 0 else None
        extents = np.full(1, spacing_z if spacing_z else np.nan)
    hu = np.stack([hus[i] for i in order])
    geo.update(
        {
            "order": "ImagePositionPatient",
            "orientation": [float(v) for v in orient],
            "origin": list(group[order[0]].ipp),
            "last": list(group[order[-1]].ipp),
            "slice_extents_mm": extents,
            "uniform": uniform,
            "datasets": [group[i].ds for i in order],
            # 1-based frame numbers in slice order for a multi-frame image (DICOM SEG references them)
            "frames": [group[i].frame + 1 for i in order] if group[0].frame is not None else None,
        }
    )
    return _scan(hu, spacing, spacing_z, pos, geo)


def _scan(hu: np.ndarray, spacing: Any, spacing_z: float | None, pos: np.ndarray, geo: dict[str, Any]) -> Scan:
    """The series as the reader contract's Scan, with where each geometry value came from."""
    if geo["order"] == "ImagePositionPatient":
        thickness = "DICOM slice positions" + (
            "" if geo["uniform"] else " (two or more slice spacings: per-slice extents)"
        )
    else:
        thickness = "unknown (no ImagePositionPatient: slices ordered by InstanceNumber)"
    src = {"spacing": "DICOM PixelSpacing" if spacing else "unknown", "thickness": thickness}
    if geo.get("modality") not in (None, "CT"):
        src["modality"] = f"{geo['modality']} read as CT (--assume-ct)"
    if geo.get("kernel"):
        src["kernel"] = f"{geo['kernel']} ({geo['kernel_kind'] or 'unknown kind'})"
    if geo.get("series_choice"):
        src["series"] = f"{geo['series_uid']}: {geo['series_choice']}"
    varying = geo["order"] == "ImagePositionPatient" and not geo["uniform"]
    return Scan(
        hu,
        spacing,
        spacing_z,
        "dicom",
        src,
        [str(k) for k in range(hu.shape[0])],
        intensity="hu",
        affine=nifti_affine(geo, spacing, spacing_z, hu.shape[0]),
        slice_extents_mm=np.asarray(geo["slice_extents_mm"], float) if varying else None,
        dicom_geometry=geo,
        positions_mm=pos,
    )


__all__ = ["folder_has_dicom", "is_dicom_file", "read_dicom_series"]
