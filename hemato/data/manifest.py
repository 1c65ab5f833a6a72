"""The canonical dataset format: ``slices.csv`` (+ optional ``patients.csv``).

``slices.csv`` — one row per slice:

======================  ==========================================================
column                  meaning
======================  ==========================================================
patient                 patient id (pseudonymous)
slice_index             integer position of the slice in the patient's stack
image                   path of the windowed 8-bit slice (PNG/JPG), relative to the file
mask                    path of the binary mask image (empty for prediction-only data)
spacing_row_mm          pixel spacing along rows, mm (empty = unknown)
spacing_col_mm          pixel spacing along columns, mm (empty = unknown)
thickness_mm            slice SPACING H, mm: distance between slice centres (empty =
                        unknown); ``slice_spacing_mm`` is the same column under its
                        proper name (either may be given; on overlapping
                        reconstructions it is smaller than the nominal thickness)
======================  ==========================================================

``patients.csv`` (optional): ``patient``, ``reference_volume_ml`` (e.g. clinicians' ABC/2),
``irregular``, ``near_skull`` and any other clinical columns (kept as tags).

Paths may not leave the dataset folder unless ``allow_outside=True``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hemato.data.readers.errors import InputError
from hemato.data.readers.images import read_mask, read_slice
from hemato.data.records import VolumeRecord
from hemato.rundir import write_atomic

SLICE_COLUMNS = ["patient", "slice_index", "image", "mask", "spacing_row_mm", "spacing_col_mm", "thickness_mm"]


def _resolve(root: Path, rel: str, manifest: Path, allow_outside: bool) -> Path:
    p = (root / rel).resolve()
    if not allow_outside and root.resolve() not in p.parents and p != root.resolve():
        raise InputError(manifest, f"path {rel!r} leaves the dataset folder (set allow_outside=true to permit)")
    return p


def _num(v: Any) -> float | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
        return None
    return float(v)


def read_manifest(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read and check the tables (columns, types, unique slice indices) without images."""
    path = Path(path)
    if path.is_dir():
        path = path / "slices.csv"
    if not path.is_file():
        raise InputError(path, "manifest does not exist")
    try:
        df = pd.read_csv(path, dtype={"patient": str, "image": str, "mask": str})
    except Exception as e:
        raise InputError(path, f"not a readable CSV ({e.__class__.__name__})") from None
    missing = [c for c in ("patient", "slice_index", "image") if c not in df]
    if missing:
        raise InputError(path, f"missing columns {missing} (needs {SLICE_COLUMNS})")
    if df.empty:
        raise InputError(path, "no slices listed")
    if "slice_spacing_mm" in df:  # the proper name of what the old name thickness_mm held
        if "thickness_mm" in df and not np.allclose(
            df["thickness_mm"].astype(float), df["slice_spacing_mm"].astype(float), equal_nan=True
        ):
            raise InputError(
                path,
                "both slice_spacing_mm and thickness_mm are given and they differ: keep slice_spacing_mm (distance between slice centres)",
            )
        df["thickness_mm"] = df["slice_spacing_mm"]
    for c in ("mask", "spacing_row_mm", "spacing_col_mm", "thickness_mm"):
        if c not in df:
            df[c] = np.nan
    dup = df[df.duplicated(["patient", "slice_index"], keep=False)]
    if len(dup):
        r = dup.iloc[0]
        raise InputError(path, f"patient {r['patient']} lists slice_index {r['slice_index']} twice")
    pat_path = path.with_name("patients.csv")
    patients = pd.read_csv(pat_path, dtype={"patient": str}) if pat_path.is_file() else None
    if patients is not None and patients["patient"].duplicated().any():
        raise InputError(
            pat_path, f"patient {patients.loc[patients['patient'].duplicated(), 'patient'].iloc[0]} listed twice"
        )
    return df, patients


def load_manifest(
    path: str | Path,
    mask_mode: str = "binary",
    allow_outside: bool = False,
    require_masks: bool = True,
    read_masks: bool = True,
) -> list[VolumeRecord]:
    """All patients of a manifest as records (images read and checked); ``read_masks=False``
    leaves the masks unread (prediction does not use them)."""
    path = Path(path)
    if path.is_dir():
        path = path / "slices.csv"
    df, patients = read_manifest(path)
    root = path.parent
    extra = patients.set_index("patient") if patients is not None else None
    records = []
    for pid, g in df.groupby("patient", sort=True):
        g = g.sort_values("slice_index")
        images, masks = [], []
        for _, row in g.iterrows():
            img = read_slice(_resolve(root, row["image"], path, allow_outside))
            if images and img.shape != images[0].shape:
                raise InputError(
                    _resolve(root, row["image"], path, allow_outside),
                    f"size {img.shape} differs from patient {pid}'s other slices {images[0].shape}",
                )
            images.append(img)
            mrel = row.get("mask") if read_masks else None
            if isinstance(mrel, str) and mrel.strip():
                mpath = _resolve(root, mrel, path, allow_outside)
                m = read_mask(mpath, mode=mask_mode)
                if m.shape != img.shape:
                    raise InputError(mpath, f"mask size {m.shape} differs from image size {img.shape}")
                masks.append(m)
            elif require_masks:
                raise InputError(path, f"patient {pid} slice {row['slice_index']} has no mask")
            else:
                masks.append(None)
        geo = {}
        for col in ("spacing_row_mm", "spacing_col_mm", "thickness_mm"):
            vals = {_num(v) for v in g[col]}
            if len(vals) > 1:
                raise InputError(path, f"patient {pid} has different {col} values {sorted(map(str, vals))}")
            v = vals.pop()
            if v is not None and not v > 0:
                raise InputError(path, f"patient {pid}: {col} must be positive, got {v}")
            geo[col] = v
        spacing = (
            (geo["spacing_row_mm"], geo["spacing_col_mm"]) if geo["spacing_row_mm"] and geo["spacing_col_mm"] else None
        )
        tags: dict[str, Any] = {}
        ref = None
        if extra is not None and pid in extra.index:
            row = extra.loc[pid]
            ref = _num(row.get("reference_volume_ml")) if "reference_volume_ml" in row else None
            tags = {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in row.items()
                if k != "reference_volume_ml"
            }
        has_masks = all(m is not None for m in masks)
        records.append(
            VolumeRecord(
                patient_id=str(pid),
                image=np.stack(images),
                mask=np.stack(masks) if has_masks else None,
                spacing_mm=spacing,
                thickness_mm=geo["thickness_mm"],
                slice_index=g["slice_index"].to_numpy(int),
                tags=tags,
                reference_volume_ml=ref,
            )
        )
    return records


class ManifestSource:
    """Data source for the datamodule: ``data=manifest data.source.path=DIR_OR_CSV``."""

    def __init__(self, path: str, mask_mode: str = "binary", allow_outside: bool = False) -> None:
        self.path = path
        self.mask_mode = mask_mode
        self.allow_outside = allow_outside

    def load(self) -> list[VolumeRecord]:
        return load_manifest(self.path, self.mask_mode, self.allow_outside)


def write_manifest(
    folder: str | Path, rows: list[dict[str, Any]], patients: list[dict[str, Any]] | None = None
) -> Path:
    """Write ``slices.csv`` (and ``patients.csv``) into ``folder``; returns the slices path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    for c in SLICE_COLUMNS:
        if c not in df:
            df[c] = np.nan
    out = folder / "slices.csv"
    write_atomic(out, df[SLICE_COLUMNS + [c for c in df.columns if c not in SLICE_COLUMNS]].to_csv(index=False))
    if patients:
        write_atomic(folder / "patients.csv", pd.DataFrame(patients).to_csv(index=False))
    return out
