"""Importers that write the canonical dataset (``slices.csv`` + PNG slices/masks).

    python -m hemato.data.convert images  --images DIR --masks DIR --out OUT [--pattern REGEX] [--spacing R C] [--thickness H]
    python -m hemato.data.convert labelme --images DIR --labelme DIR --out OUT [--labels L ...]
    python -m hemato.data.convert nifti   --images DIR --masks DIR --out OUT [--level 40 --width 120]
    python -m hemato.data.convert dicom   --series DIR [--masks DIR] --out OUT   (one sub-folder per patient;
                                          masks: <name>.nii[.gz] on the series grid or a DICOM SEG <name>.dcm)

Slices are written as windowed 8-bit PNGs under ``OUT/images/<patient>/`` and masks under
``OUT/masks/<patient>/``; geometry comes from the files (NIfTI header, DICOM tags) or from
``--spacing/--thickness``, and is left empty (= unknown) otherwise, never guessed.
Patient ids are file or folder names, never DICOM PatientName/PatientID.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hemato.data.manifest import write_manifest
from hemato.data.readers.dicom import read_dicom_series
from hemato.data.readers.errors import InputError
from hemato.data.readers.images import IMAGE_SUFFIXES, read_mask, read_slice
from hemato.data.readers.intensity import window_hu
from hemato.data.readers.labelme import read_labelme
from hemato.data.readers.nifti import read_nifti
from hemato.privacy import pseudonym

DEFAULT_PATTERN = r"(?P<patient>.+?)[_-](?P<slice>\d+)$"


def _write_png(path: Path, arr: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), arr):
        raise InputError(path, "could not write PNG")
    return str(path)


def _geometry(spacing: tuple[float, float] | None, thickness: float | None) -> dict[str, Any]:
    return {
        "spacing_row_mm": spacing[0] if spacing else None,
        "spacing_col_mm": spacing[1] if spacing else None,
        "thickness_mm": thickness,
    }


def _stack_rows(
    out: Path, pid: str, images: np.ndarray, masks: np.ndarray | None, geo: dict[str, Any], first_index: int = 0
) -> list[dict[str, Any]]:
    rows = []
    for k, img in enumerate(images):
        idx = first_index + k
        ip = _write_png(out / "images" / pid / f"{idx:04d}.png", img)
        row = {"patient": pid, "slice_index": idx, "image": str(Path(ip).relative_to(out)), **geo}
        if masks is not None:
            mp = _write_png(out / "masks" / pid / f"{idx:04d}.png", masks[k].astype(np.uint8) * 255)
            row["mask"] = str(Path(mp).relative_to(out))
        rows.append(row)
    return rows


def _images_in(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        raise InputError(folder, "folder does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)
    if not files:
        raise InputError(folder, f"no {'/'.join(suffixes)} files")
    return files


def _parse(stem: str, pattern: str, path: Path) -> tuple[str, int]:
    m = re.match(pattern, stem)
    if not m:
        raise InputError(path, f"name does not match --pattern {pattern!r} (needs groups 'patient' and 'slice')")
    return m.group("patient"), int(m.group("slice"))


def _slice_files(images: Path, pattern: str):
    """(file, patient, slice number, image (H, W) uint8) of every slice image in ``images``."""
    for f in _images_in(images, IMAGE_SUFFIXES):
        pid, idx = _parse(f.stem, pattern, f)
        yield f, pid, idx, read_slice(f)


def convert_images(
    images: Path,
    masks: Path | None,
    out: Path,
    pattern: str = DEFAULT_PATTERN,
    spacing=None,
    thickness=None,
    mask_mode: str = "binary",
    mask_suffix: str = ".png",
) -> Path:
    """PNG/JPG slices (+ mask images with the same stem) named ``<patient>_<slice>``."""
    rows = []
    geo = _geometry(tuple(spacing) if spacing else None, thickness)
    for f, pid, idx, img in _slice_files(images, pattern):
        ip = _write_png(out / "images" / pid / f"{idx:04d}.png", img)
        row = {"patient": pid, "slice_index": idx, "image": str(Path(ip).relative_to(out)), **geo}
        if masks is not None:
            cands = [masks / f"{f.stem}{mask_suffix}", *[masks / f"{f.stem}{s}" for s in IMAGE_SUFFIXES]]
            mf = next((c for c in cands if c.is_file()), None)
            if mf is None:
                raise InputError(f, f"no mask named {f.stem}.* in {masks}")
            m = read_mask(mf, mode=mask_mode)
            if m.shape != img.shape:
                raise InputError(mf, f"mask size {m.shape} differs from image size {img.shape}")
            row["mask"] = str(
                Path(_write_png(out / "masks" / pid / f"{idx:04d}.png", m.astype(np.uint8) * 255)).relative_to(out)
            )
        rows.append(row)
    return write_manifest(out, rows)


def convert_labelme(
    images: Path, labelme: Path, out: Path, pattern: str = DEFAULT_PATTERN, labels=None, spacing=None, thickness=None
) -> Path:
    """Slices + Labelme JSON files with the same stem (slices without JSON have no bleed)."""
    rows = []
    geo = _geometry(tuple(spacing) if spacing else None, thickness)
    for f, pid, idx, img in _slice_files(images, pattern):
        js = labelme / f"{f.stem}.json"
        m = read_labelme(js, labels=labels, shape_hw=img.shape) if js.is_file() else np.zeros(img.shape, bool)
        if m.shape != img.shape:
            raise InputError(js, f"annotation size {m.shape} differs from image size {img.shape}")
        rows += _stack_rows(out, pid, img[None], m[None], geo, idx)
    return write_manifest(out, rows)


def convert_nifti(images: Path, masks: Path | None, out: Path, level: float = 40.0, width: float = 120.0) -> Path:
    """NIfTI image volumes (``images/049.nii``) and masks with the same name (``masks/049.nii``)."""
    rows = []
    for f in _images_in(images, (".nii", ".gz")):
        pid = f.name.removesuffix(".gz").removesuffix(".nii")
        scan = read_nifti(f)
        hu, spacing, thickness, affine = scan.image, scan.spacing_mm, scan.thickness_mm, scan.affine
        m = None
        if masks is not None:
            mf = masks / f.name
            if not mf.is_file():
                raise InputError(f, f"no mask {mf}")
            mask_scan = read_nifti(mf, kind="mask")
            m, m_affine = mask_scan.image, mask_scan.affine
            if m.shape != hu.shape:
                raise InputError(mf, f"mask shape {m.shape} differs from image shape {hu.shape}")
            # same voxel grid in space, not only the same shape: a mask saved with another
            # affine lies elsewhere in the patient (tolerance: 1 % of a voxel, in mm)
            tol = 0.01 * min(spacing[0], spacing[1], thickness)
            diff = float(np.abs(m_affine - affine).max())
            if diff > tol:
                raise InputError(
                    mf,
                    f"mask geometry (affine) differs from the image's by up to {diff:.3g} mm: the mask is not on the image's voxel grid",
                )
            m = m > 0
        rows += _stack_rows(out, pid, window_hu(hu, level, width), m, _geometry(spacing, thickness))
    return write_manifest(out, rows)


def _dicom_mask(masks: Path, name: str, series: Path, geo: dict[str, Any], spacing, slice_spacing, shape) -> np.ndarray:
    """The mask of series folder ``name``, (Z, H, W) bool in the series' slice order, from
    ``masks/<name>.nii[.gz]`` (a NIfTI on the series' voxel grid, any axis order) or
    ``masks/<name>.dcm`` / a SEG in ``masks/<name>/`` (a DICOM Segmentation referencing the
    series, segment 1)."""
    import nibabel as nib

    from hemato.data.readers.dicom_seg import read_dicom_seg
    from hemato.data.readers.geometry import nifti_affine

    for nii in (masks / f"{name}.nii.gz", masks / f"{name}.nii"):
        if nii.is_file():
            try:
                img = nib.load(str(nii))
                data = np.asarray(img.dataobj)
            except Exception as e:
                raise InputError(nii, f"not a readable NIfTI mask ({e.__class__.__name__})") from None
            data = data[..., 0] if data.ndim == 4 and data.shape[3] == 1 else data
            values = set(np.unique(data).tolist())
            if data.ndim != 3 or not (values <= {0, 1} or values <= {0, 255}):
                raise InputError(nii, f"not a binary 3D mask (shape {data.shape}, values {sorted(values)[:4]})")
            # bring the mask's voxel axes to the series' (col, row, slice) order (nibabel's
            # orientation tools: axis swaps and flips only, never a resampling), then require
            # the same voxel grid in space
            target = nifti_affine(geo, spacing, slice_spacing, shape[0])
            tr = nib.orientations.ornt_transform(nib.io_orientation(img.affine), nib.io_orientation(target))
            data = nib.orientations.apply_orientation(data, tr)
            affine = img.affine @ nib.orientations.inv_ornt_aff(tr, img.shape[:3])
            tol = 0.01 * min(spacing or (1.0, 1.0)) if spacing else 0.01
            diff = float(np.abs(affine - target).max())
            if data.shape != (shape[2], shape[1], shape[0]) or diff > max(tol, 1e-3):
                raise InputError(
                    nii,
                    f"mask grid (shape {img.shape[:3]}, affine off by up to {diff:.3g} mm) is not the voxel grid of series {series}",
                )
            return np.transpose(data, (2, 1, 0)) > 0
    seg = masks / f"{name}.dcm"
    if not seg.is_file() and (masks / name).is_dir():
        found = sorted(p for p in (masks / name).iterdir() if p.is_file())
        seg = found[0] if len(found) == 1 else seg
    if seg.is_file():
        try:
            return read_dicom_seg(seg, geo["datasets"], geo.get("frames"))
        except Exception as e:
            raise InputError(
                seg, f"not a DICOM SEG of series {series} ({e.__class__.__name__}: {str(e)[:100]})"
            ) from None
    raise InputError(series, f"no mask for it in {masks} ({name}.nii.gz, {name}.nii, {name}.dcm or one SEG in {name}/)")


def convert_dicom(
    series_root: Path,
    out: Path,
    level: float = 40.0,
    width: float = 120.0,
    keep_names: bool = False,
    masks: Path | None = None,
) -> Path:
    """One DICOM series per sub-folder. Without ``masks`` the dataset is prediction-only;
    with it, each series ``<name>`` takes its mask from ``masks/<name>.nii[.gz]`` (on the
    series' voxel grid) or a DICOM SEG ``masks/<name>.dcm`` (or the one file in
    ``masks/<name>/``). Folder names are often patient names: the dataset uses salted
    pseudonyms unless ``keep_names``."""
    rows = []
    folders = sorted(p for p in series_root.iterdir() if p.is_dir()) if series_root.is_dir() else []
    if not folders:
        raise InputError(series_root, "no series sub-folders")
    if masks is not None and not masks.is_dir():
        raise InputError(masks, "the masks folder does not exist")
    for d in folders:
        scan = read_dicom_series(d)
        hu, spacing, thickness, geo = scan.image, scan.spacing_mm, scan.thickness_mm, scan.dicom_geometry
        if geo["order"] == "ImagePositionPatient" and not geo["uniform"]:
            raise InputError(
                d,
                "the series has more than one slice spacing, which a manifest (one slice spacing per patient) cannot hold",
            )
        m = _dicom_mask(masks, d.name, d, geo, spacing, thickness, hu.shape) if masks is not None else None
        pid = d.name if keep_names else pseudonym(d.name)
        rows += _stack_rows(out, pid, window_hu(hu, level, width), m, _geometry(spacing, thickness))
    return write_manifest(out, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hemato.data.convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="kind", required=True)
    for kind in ("images", "labelme", "nifti", "dicom"):
        p = sub.add_parser(kind)
        p.add_argument("--out", required=True, type=Path)
        if kind == "dicom":
            p.add_argument("--series", required=True, type=Path)
        else:
            p.add_argument("--images", required=True, type=Path)
        if kind in ("images", "nifti", "dicom"):
            p.add_argument("--masks", type=Path)
        if kind == "labelme":
            p.add_argument("--labelme", required=True, type=Path)
            p.add_argument("--labels", nargs="*")
        if kind in ("images", "labelme"):
            p.add_argument("--pattern", default=DEFAULT_PATTERN)
            p.add_argument("--spacing", nargs=2, type=float, metavar=("ROW_MM", "COL_MM"))
            p.add_argument("--thickness", type=float)
        if kind == "images":
            p.add_argument("--mask-mode", default="binary", choices=["binary", "nonzero"])
        if kind == "dicom":
            p.add_argument(
                "--keep-names", action="store_true", help="use folder names as patient ids (default: salted pseudonyms)"
            )
        if kind in ("nifti", "dicom"):
            p.add_argument("--level", type=float, default=40.0)
            p.add_argument("--width", type=float, default=120.0)
    a = ap.parse_args(argv)
    try:
        if a.kind == "images":
            path = convert_images(a.images, a.masks, a.out, a.pattern, a.spacing, a.thickness, a.mask_mode)
        elif a.kind == "labelme":
            path = convert_labelme(a.images, a.labelme, a.out, a.pattern, a.labels, a.spacing, a.thickness)
        elif a.kind == "nifti":
            path = convert_nifti(a.images, a.masks, a.out, a.level, a.width)
        else:
            path = convert_dicom(a.series, a.out, a.level, a.width, a.keep_names, a.masks)
    except InputError as e:
        print(f"hemato.data.convert: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
