"""Dataset check: ``python -m hemato.data.check MANIFEST`` (also run before training).

Reads every file of a manifest and reports EVERY problem (not just the first): unreadable or
corrupt images and masks, image/mask size mismatches, non-binary masks, slices of a patient
with different sizes, spacing present/absent/inconsistent, duplicate slice indices, paths
leaving the dataset folder, patients duplicated across a split file; then a summary
(patients, slices, bleed slices, volume range in ml where the spacing is known).
Exit code 0 when clean, 1 when problems were found, 2 when the manifest itself is unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hemato.data.manifest import _num, _resolve, read_manifest
from hemato.data.readers.errors import InputError
from hemato.data.readers.images import read_mask, read_slice


@dataclass
class CheckReport:
    """Problems found and a summary of the dataset."""

    problems: list[str] = field(default_factory=list)
    patients: int = 0
    slices: int = 0
    bleed_slices: int = 0
    volumes_ml: dict[str, float] = field(default_factory=dict)
    spacing_unknown: list[str] = field(default_factory=list)
    slices_without_mask: int = 0

    @property
    def trainable(self) -> bool:
        """Usable for training: no problems, and every slice has a mask."""
        return self.ok and self.slices_without_mask == 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = [f"{self.patients} patients, {self.slices} slices, {self.bleed_slices} with bleed"]
        if self.volumes_ml:
            v = np.array(list(self.volumes_ml.values()))
            lines.append(
                f"bleed volume {v.min():.2f} - {v.max():.2f} ml (median {np.median(v):.2f}) over {len(v)} patients with known spacing"
            )
        if self.spacing_unknown:
            lines.append(f"spacing/thickness unknown (no volumes in ml) for {len(self.spacing_unknown)} patients")
        if self.ok and self.slices_without_mask:
            lines.append(
                f"no problems found for prediction; NOT usable for training: {self.slices_without_mask} of {self.slices} slices have no mask"
            )
        else:
            lines.append("no problems found" if self.ok else f"{len(self.problems)} problems:")
        return "\n".join(lines + [f"  - {p}" for p in self.problems])


def check_dataset(
    manifest: str | Path, mask_mode: str = "binary", allow_outside: bool = False, split_file: str | Path | None = None
) -> CheckReport:
    """Check every slice of ``manifest``; raises InputError only if the tables are unusable."""
    path = Path(manifest)
    if path.is_dir():
        path = path / "slices.csv"
    df, _ = read_manifest(path)
    root = path.parent
    rep = CheckReport(patients=int(df["patient"].nunique()), slices=len(df))
    for pid, g in df.groupby("patient", sort=True):
        shape = None
        area_px = 0
        for _, row in g.sort_values("slice_index").iterrows():
            where = f"patient {pid} slice {row['slice_index']}"
            img = None
            try:
                ipath = _resolve(root, str(row["image"]), path, allow_outside)
                img = read_slice(ipath)
            except InputError as e:
                rep.problems.append(f"{where}: {e}")
            if img is not None:
                if shape is not None and img.shape != shape:
                    rep.problems.append(
                        f"{where}: image size {img.shape} differs from the patient's first slice {shape}"
                    )
                shape = shape or img.shape
            mrel = row.get("mask")
            if not (isinstance(mrel, str) and mrel.strip()):
                rep.slices_without_mask += 1
            if isinstance(mrel, str) and mrel.strip():
                try:
                    m = read_mask(_resolve(root, mrel, path, allow_outside), mode=mask_mode)
                    if img is not None and m.shape != img.shape:
                        rep.problems.append(f"{where}: mask size {m.shape} differs from image size {img.shape}")
                    elif m.any():
                        rep.bleed_slices += 1
                        area_px += int(m.sum())
                except InputError as e:
                    rep.problems.append(f"{where}: {e}")
        geo = {}
        for col in ("spacing_row_mm", "spacing_col_mm", "thickness_mm"):
            vals = {_num(v) for v in g[col]}
            if len(vals) > 1:
                rep.problems.append(f"patient {pid}: different {col} values {sorted(map(str, vals))}")
                geo[col] = None  # no volume from inconsistent geometry
                continue
            v = next(iter(vals))
            if v is not None and not v > 0:
                rep.problems.append(f"patient {pid}: {col} must be positive, got {v}")
            geo[col] = v
        if all(geo.values()) and all(v and v > 0 for v in geo.values()):
            rep.volumes_ml[str(pid)] = (
                area_px * geo["spacing_row_mm"] * geo["spacing_col_mm"] * geo["thickness_mm"] / 1000.0
            )
        else:
            rep.spacing_unknown.append(str(pid))
    if split_file:
        split = json.loads(Path(split_file).read_text())["split"]
        sides = list(split)
        for i, a in enumerate(sides):
            for b in sides[i + 1 :]:
                for p in sorted(set(split[a]) & set(split[b])):
                    rep.problems.append(f"{split_file}: patient {p} is on both {a} and {b}")
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hemato.data.check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("manifest")
    ap.add_argument("--mask-mode", default="binary", choices=["binary", "nonzero"])
    ap.add_argument(
        "--training", action="store_true", help="also fail when slices have no mask (unusable for training)"
    )
    ap.add_argument("--allow-outside", action="store_true")
    ap.add_argument("--split-file")
    a = ap.parse_args(argv)
    try:
        rep = check_dataset(a.manifest, a.mask_mode, a.allow_outside, a.split_file)
    except InputError as e:
        print(f"hemato.data.check: error: {e}", file=sys.stderr)
        return 2
    print(rep.summary())
    if a.training:
        return 0 if rep.trainable else 1
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["CheckReport", "check_dataset"]
