"""Synthetic head-CT phantom with exact hematoma ground truth (the embedded default dataset).

No library generates head-CT phantoms with intracranial bleeds, so this module is written by
hand. Every patient is an analytic 3D model evaluated at voxel centres:

* geometry in millimetres: a head ellipsoid (scalp, skull of varying thickness, brain),
  a neck below the skull base, ventricles, sulci, deep grey nuclei, falx;
* intensities in Hounsfield units, then a brain window (default level 40, width 120, as the
  ct-ich sample) maps them to 0..255 like the paper's PNGs;
* distractors that are bright like blood: calcified choroid plexus and pineal, falx
  calcification, skull-base bone, beam-hardening streaks, the scanner's head rest;
* 0-2 hematomas per patient: compact ellipsoids, irregular lobulated blobs, subdural
  crescents and epidural lenses, some with a darker edema rim.

The ground truth is the voxel mask itself, so ``PhantomPatient.volume_ml`` is exact:
``n_voxels * spacing_row * spacing_col * thickness / 1000``.

Coordinates: x = left-right (columns), y = anterior(-) to posterior(+) (rows, anterior at
the top as radiologists display it), z = inferior(-) to superior(+); all in mm, origin at
the head centre.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hemato.data.phantom_anatomy import HU_EDEMA, Head, slice_hu, smooth_noise
from hemato.data.phantom_lesions import Hematoma, blob_level, extra_axial, make_hematoma
from hemato.data.records import VolumeRecord
from hemato.rundir import temp_beside

__all__ = [
    "PhantomConfig",
    "PhantomPatient",
    "Hematoma",
    "generate_patient",
    "generate_cohort",
    "window",
    "PhantomSource",
]


@dataclass(frozen=True)
class PhantomConfig:
    """Parameters of a phantom cohort.

    Attributes:
        n_patients: number of patients.
        seed: master seed; patient ``i`` uses ``(seed, i)`` so cohorts are prefix-stable.
        image_size: slice size in pixels (square).
        pixel_spacing_mm: nominal in-plane spacing at ``image_size=512``; scaled by
            ``512 / image_size`` so the field of view stays ~230 mm at any size.
        spacing_jitter: relative per-patient jitter of the spacing (scanners vary).
        slice_thickness_mm: slice thickness H (mm), also the slice spacing.
        min_slices, max_slices: number of axial slices per patient (inclusive).
        p_no_bleed: probability that a patient has no hematoma.
        p_two_bleeds: probability of a second hematoma given at least one.
        volume_ml_range: log-uniform range of each hematoma's target volume (ml).
        window_level, window_width: brain window (HU) used to map to 0..255.
        noise_hu: standard deviation of the pixel noise (HU).
        blur_px: Gaussian blur sigma (pixels at 512; scaled with the size).
    """

    n_patients: int = 60
    seed: int = 0
    image_size: int = 512
    pixel_spacing_mm: float = 0.45
    spacing_jitter: float = 0.05
    slice_thickness_mm: float = 5.0
    min_slices: int = 20
    max_slices: int = 40
    p_no_bleed: float = 0.15
    p_two_bleeds: float = 0.25
    volume_ml_range: tuple[float, float] = (4.0, 70.0)
    window_level: float = 40.0
    window_width: float = 120.0
    noise_hu: float = 4.0
    blur_px: float = 0.8

    def digest(self) -> str:
        """Short stable hash of the configuration (for cache folders)."""
        payload = json.dumps(self.__dict__, sort_keys=True, default=list)
        return hashlib.sha1(payload.encode()).hexdigest()[:12]


@dataclass
class PhantomPatient:
    """One synthetic patient.

    Attributes:
        patient_id: e.g. ``"P0007"``.
        image: (Z, H, W) uint8, brain-windowed slices.
        mask: (Z, H, W) bool, exact hematoma voxels.
        spacing_mm: (row, col) pixel spacing in mm.
        thickness_mm: slice thickness H in mm.
        hematomas: the generated bleeds.
        tags: ``{"irregular": bool, "near_skull": bool, "irregular_reason": str,
            "near_skull_reason": str, "kinds": str}``.
    """

    patient_id: str
    image: np.ndarray
    mask: np.ndarray
    spacing_mm: tuple[float, float]
    thickness_mm: float
    hematomas: list[Hematoma]
    tags: dict[str, Any]

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in ml."""
        return self.spacing_mm[0] * self.spacing_mm[1] * self.thickness_mm / 1000.0

    @property
    def volume_ml(self) -> float:
        """Exact hematoma volume (ml) of the ground-truth voxel mask."""
        return float(self.mask.sum()) * self.voxel_ml


def window(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """Map Hounsfield units to 0..255 uint8 with a linear window [level-width/2, level+width/2]."""
    lo = level - width / 2.0
    out = (hu - lo) * (255.0 / width)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def generate_patient(cfg: PhantomConfig, index: int) -> PhantomPatient:
    """Generate patient ``index`` of the cohort ``cfg`` deterministically.

    Returns images (Z, H, W) uint8 in the brain window, the exact bool mask and geometry.
    """
    rng = np.random.default_rng([cfg.seed, index])
    size = cfg.image_size
    spacing = cfg.pixel_spacing_mm * 512.0 / size * (1.0 + rng.uniform(-1, 1) * cfg.spacing_jitter)
    spacing_rc = (float(spacing), float(spacing))
    n_slices = int(rng.integers(cfg.min_slices, cfg.max_slices + 1))
    head = Head(rng, cfg, n_slices)
    n_bleeds = 0
    if rng.random() >= cfg.p_no_bleed:
        n_bleeds = 2 if rng.random() < cfg.p_two_bleeds else 1
    bleeds = [make_hematoma(rng, head, cfg) for _ in range(n_bleeds)]

    x, y = head.coords(size, spacing_rc)
    px_mm = spacing
    images = np.empty((n_slices, size, size), dtype=np.uint8)
    masks = np.zeros((n_slices, size, size), dtype=bool)
    min_dist = np.full(len(bleeds), np.inf)
    blur = cfg.blur_px * size / 512.0
    for k in range(n_slices):
        hu, geo = slice_hu(head, k, x, y, cfg, rng, px_mm)
        z = geo["z"]
        for i, h in enumerate(bleeds):
            if h.kind in ("compact", "lobulated"):
                # evaluate only inside the blob's bounding box (the slow part otherwise)
                reach = 2.0 * float(np.max(h.params["axes"])) + h.edema_mm + 2.0
                c = h.params["centre"]
                inside = np.zeros(hu.shape, dtype=bool)
                if abs(z - c[2]) < reach:
                    rows = np.flatnonzero((np.abs(x - c[0]) < reach).any(1) & (np.abs(y - c[1]) < reach).any(1))
                    cols = np.flatnonzero((np.abs(x - c[0]) < reach).any(0) & (np.abs(y - c[1]) < reach).any(0))
                if abs(z - c[2]) < reach and rows.size and cols.size:
                    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
                    level = blob_level(h, x[box], y[box], z)
                    inside[box] = level < 1.0
                    inside &= geo["intracranial"]
                    if h.edema_mm > 0:
                        rim = np.zeros(hu.shape, dtype=bool)
                        rim[box] = level < 1.0 + h.edema_mm / float(np.mean(h.params["axes"]))
                        rim &= ~inside & geo["intracranial"] & (hu < 60)
                        hu = np.where(rim, HU_EDEMA + 3 * smooth_noise(rng, hu.shape, 16), hu)
            else:
                inside = extra_axial(h, geo)
            if inside.any():
                tex = 3.0 * smooth_noise(rng, hu.shape, 32)
                hu = np.where(inside, h.hu + tex, hu)
                masks[k] |= inside
                min_dist[i] = min(min_dist[i], float(geo["d_in"][inside].min()))
        hu = hu + rng.normal(0.0, cfg.noise_hu, size=hu.shape).astype(np.float32)
        if blur > 0:
            hu = cv2.GaussianBlur(hu, (0, 0), blur)
        images[k] = window(hu, cfg.window_level, cfg.window_width)

    # subgroup tags, with what made them so
    irregular = [h.kind for h in bleeds if h.kind in ("lobulated", "subdural")]
    near = []
    for h, dist in zip(bleeds, min_dist):
        if h.kind in ("subdural", "epidural"):
            near.append(h.kind)
        elif np.isfinite(dist) and dist < 5.0:
            near.append(f"{h.kind} {dist:.1f} mm from the inner table")
    tags = {
        "kinds": "+".join(h.kind for h in bleeds) or "none",
        "irregular": bool(irregular),
        "irregular_reason": ", ".join(irregular),
        "near_skull": bool(near),
        "near_skull_reason": ", ".join(near),
    }
    return PhantomPatient(
        patient_id=f"P{index:04d}",
        image=images,
        mask=masks,
        spacing_mm=spacing_rc,
        thickness_mm=float(cfg.slice_thickness_mm),
        hematomas=bleeds,
        tags=tags,
    )


def save_patient(p: PhantomPatient, path: Path) -> None:
    """Write one patient to a compressed ``.npz`` (images, mask, geometry, tags)."""
    meta = {
        "patient_id": p.patient_id,
        "spacing_mm": list(p.spacing_mm),
        "thickness_mm": p.thickness_mm,
        "tags": p.tags,
        "hematomas": [{"kind": h.kind, "target_ml": h.target_ml} for h in p.hematomas],
    }
    tmp = temp_beside(path, ".npz")
    np.savez_compressed(tmp, image=p.image, mask=np.packbits(p.mask, axis=-1), meta=json.dumps(meta))
    tmp.replace(path)


def load_patient(path: Path) -> PhantomPatient:
    """Read a patient written by :func:`save_patient`."""
    with np.load(path) as z:
        image = z["image"]
        mask = np.unpackbits(z["mask"], axis=-1, count=image.shape[-1]).astype(bool)
        meta = json.loads(str(z["meta"]))
    bleeds = [Hematoma(kind=h["kind"], target_ml=h["target_ml"], hu=0.0, edema_mm=0.0) for h in meta["hematomas"]]
    return PhantomPatient(
        patient_id=meta["patient_id"],
        image=image,
        mask=mask,
        spacing_mm=tuple(meta["spacing_mm"]),
        thickness_mm=meta["thickness_mm"],
        hematomas=bleeds,
        tags=meta["tags"],
    )


def generate_cohort(cfg: PhantomConfig, cache_dir: str | Path | None = None) -> list[PhantomPatient]:
    """Generate (or read back from ``cache_dir``) all ``cfg.n_patients`` patients."""
    folder = Path(cache_dir) / f"phantom-{cfg.digest()}" if cache_dir else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(cfg.n_patients):
        f = folder / f"P{i:04d}.npz" if folder is not None else None
        if f is not None and f.exists():
            out.append(load_patient(f))
            continue
        p = generate_patient(cfg, i)
        if f is not None:
            save_patient(p, f)
        out.append(p)
    return out


class PhantomSource:
    """Data source for the datamodule: a phantom cohort as :class:`VolumeRecord` objects.

    ``cache_dir`` keeps generated patients as ``.npz`` so reruns skip generation.
    """

    def __init__(self, cache_dir: str | None = None, **config: Any) -> None:
        if "volume_ml_range" in config:
            config["volume_ml_range"] = tuple(config["volume_ml_range"])
        self.config = PhantomConfig(**config)
        self.cache_dir = cache_dir

    def load(self) -> list[VolumeRecord]:
        out = []
        for p in generate_cohort(self.config, self.cache_dir):
            out.append(
                VolumeRecord(
                    patient_id=p.patient_id,
                    image=p.image,
                    mask=p.mask,
                    spacing_mm=p.spacing_mm,
                    thickness_mm=p.thickness_mm,
                    tags=dict(p.tags),
                )
            )
        return out


def montage(patients: list[PhantomPatient], per_patient: int = 3, contour: bool = True) -> np.ndarray:
    """(rows*H, cols*W, 3) uint8 picture: for each patient its largest-bleed slice and others,
    with the true hematoma contour in green (the convention of the paper's figures)."""
    tiles = []
    for p in patients:
        areas = p.mask.reshape(p.mask.shape[0], -1).sum(1)
        z = p.image.shape[0]
        picks = [int(np.argmax(areas)) if areas.max() > 0 else z // 2, int(z * 0.3), int(z * 0.75)][:per_patient]
        row = []
        for k in picks:
            rgb = cv2.cvtColor(p.image[k], cv2.COLOR_GRAY2BGR)
            if contour and p.mask[k].any():
                cnts, _ = cv2.findContours(p.mask[k].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(rgb, cnts, -1, (0, 255, 0), 1)
            cv2.putText(rgb, f"{p.patient_id} z{k}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
            row.append(rgb)
        tiles.append(np.hstack(row))
    return np.vstack(tiles)


def main(argv: list[str] | None = None) -> None:
    """``python -m hemato.data.phantom --out DIR``: write a few patients as PNG for a look."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--n", type=int, default=4, help="number of patients")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=512, help="slice size in pixels")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = PhantomConfig(n_patients=args.n, seed=args.seed, image_size=args.size)
    patients = [generate_patient(cfg, i) for i in range(args.n)]
    for p in patients:
        print(
            f"{p.patient_id}: {p.image.shape[0]} slices, spacing {p.spacing_mm[0]:.3f} mm, "
            f"thickness {p.thickness_mm} mm, bleed {p.volume_ml:.2f} ml ({p.tags['kinds']})"
        )
    cv2.imwrite(str(out / "phantom_montage.png"), montage(patients))
    print(f"wrote {out / 'phantom_montage.png'}")


if __name__ == "__main__":
    main()
