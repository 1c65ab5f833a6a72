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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

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

# Hounsfield units of the tissues (typical values for non-contrast head CT).
HU_AIR = -1000.0
HU_FAT = -90.0
HU_SCALP = 35.0
HU_BONE = 1300.0
HU_DIPLOE = 500.0
HU_CSF = 6.0
HU_GREY = 38.0
HU_WHITE = 28.0
HU_EDEMA = 16.0


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
class Hematoma:
    """One generated bleed: its kind, target volume and what makes it a subgroup member."""

    kind: str  # "compact" | "lobulated" | "subdural" | "epidural"
    target_ml: float
    hu: float
    edema_mm: float
    params: dict[str, Any] = field(default_factory=dict)


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
# helpers
# --------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth random field in [-1, 1]-ish: a ``cells x cells`` grid upsampled bicubically."""
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _angle_diff(a: np.ndarray, b: float) -> np.ndarray:
    """Signed smallest difference a-b of angles (radians)."""
    return (a - b + np.pi) % (2 * np.pi) - np.pi


class _Head:
    """Analytic head of one patient; evaluates tissue maps on one axial slice."""

    def __init__(self, rng: np.random.Generator, cfg: PhantomConfig, n_slices: int) -> None:
        self.rng = rng
        self.a = rng.uniform(68.0, 77.0)  # lateral semi-axis (mm)
        self.b = rng.uniform(86.0, 97.0)  # AP semi-axis (mm)
        self.c = rng.uniform(80.0, 92.0)  # vertical semi-axis (mm)
        self.tilt = np.deg2rad(rng.uniform(-7.0, 7.0))
        self.cx = rng.uniform(-4.0, 4.0)
        self.cy = rng.uniform(-6.0, 2.0)
        # low-order modulation of the outer surface (heads are not ellipsoids)
        self.mod_k = np.array([2, 3, 4])
        self.mod_a = rng.uniform(-0.025, 0.025, size=3)
        self.mod_p = rng.uniform(0, 2 * np.pi, size=3)
        self.scalp = rng.uniform(3.5, 6.5)
        self.skull_mean = rng.uniform(5.0, 7.5)
        self.skull_var_a = rng.uniform(0.5, 2.0, size=3)
        self.skull_var_p = rng.uniform(0, 2 * np.pi, size=3)
        # slices from just below the vertex downwards
        h = cfg.slice_thickness_mm
        top = self.c * rng.uniform(0.90, 0.97)
        self.z = top - (np.arange(n_slices)[::-1] + 0.5) * h  # ascending, inferior first
        # ventricles and deep structures
        self.vent_w = rng.uniform(4.0, 9.0)  # lateral ventricle half-width (mm)
        self.vent_x = rng.uniform(6.0, 10.0)
        self.choroid = rng.random() < 0.7
        self.pineal = rng.random() < 0.5
        self.falx_calc = rng.random() < 0.3
        self.gyr_lambda = rng.uniform(11.0, 16.0)
        self.gyr_phase_cells = int(rng.integers(5, 9))
        self.streaks = rng.random() < 0.8
        self.headrest = rng.random() < 0.6

    # geometry -----------------------------------------------------------------------
    def coords(self, size: int, spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """Head-frame (x, y) of pixel centres (mm), rotated by the head tilt."""
        rows = (np.arange(size, dtype=np.float32) - (size - 1) / 2.0) * spacing[0]
        cols = (np.arange(size, dtype=np.float32) - (size - 1) / 2.0) * spacing[1]
        yy, xx = np.meshgrid(rows, cols, indexing="ij")
        xx, yy = xx - self.cx, yy - self.cy
        ct, st = np.cos(self.tilt), np.sin(self.tilt)
        return (ct * xx + st * yy).astype(np.float32), (-st * xx + ct * yy).astype(np.float32)

    def radial(self, x: np.ndarray, y: np.ndarray, z: float) -> dict[str, np.ndarray]:
        """Distances (mm) along the ray from the head centre: outside scalp, inside table."""
        theta = np.arctan2(y, x)
        mod = 1.0 + sum(a * np.cos(k * theta + p) for k, a, p in zip(self.mod_k, self.mod_a, self.mod_p))
        rho = np.sqrt((x / self.a) ** 2 + (y / self.b) ** 2 + (z / self.c) ** 2) / mod
        r3 = np.sqrt(x * x + y * y + z * z)
        rho = np.maximum(rho, 1e-6)
        d_out = r3 / rho - r3  # distance inward from the scalp surface (negative outside)
        skull = self.skull_mean + sum(
            a * np.cos((k + 1) * theta + p) for k, a, p in zip(range(3), self.skull_var_a, self.skull_var_p)
        )
        # the occipital and frontal bone is thicker, the temporal squama thinner
        skull = skull * (1.0 + 0.25 * np.abs(np.sin(theta)) - 0.15 * np.abs(np.cos(theta)))
        skull = skull * (1.0 + 0.5 * np.clip(-z / self.c - 0.2, 0, None))
        d_in = d_out - self.scalp - skull  # distance inward from the inner table
        return {"theta": theta, "d_out": d_out, "d_in": d_in, "skull": skull}


def _slice_hu(
    head: _Head,
    k: int,
    x: np.ndarray,
    y: np.ndarray,
    cfg: PhantomConfig,
    rng: np.random.Generator,
    px_mm: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Hounsfield map of slice k without bleeds, and the geometry maps for placing them."""
    z = float(head.z[k])
    zn = z / head.c
    g = head.radial(x, y, z)
    d_out, d_in, theta = g["d_out"], g["d_in"], g["theta"]
    shape = x.shape
    hu = np.full(shape, HU_AIR, dtype=np.float32)

    if zn < -0.78:
        # neck / skull base below the brain: soft tissue, spine, pharynx air
        r = np.sqrt((x / (0.62 * head.a)) ** 2 + ((y - 8) / (0.6 * head.b)) ** 2)
        hu[r < 1.0] = HU_SCALP
        hu[(r < 1.0) & (r > 0.9)] = HU_FAT
        spine = np.sqrt(x**2 + (y - 25) ** 2) < 13
        hu[spine] = HU_BONE * 0.8
        hu[np.sqrt(x**2 + (y - 25) ** 2) < 6] = 30.0  # cord
        airway = np.sqrt((x / 9) ** 2 + ((y + 10) / 6) ** 2) < 1
        hu[airway] = HU_AIR
        intracranial = np.zeros(shape, dtype=bool)
        return hu, {"d_in": d_in, "theta": theta, "intracranial": intracranial, "z": z}

    inside_head = d_out > 0
    hu[inside_head] = HU_SCALP
    hu[inside_head & (d_out < 1.5)] = HU_SCALP + 10
    hu[inside_head & (d_out > 1.8) & (d_out < 2.6)] = HU_FAT
    bone = (d_out >= head.scalp) & (d_in < 0)
    # diploe: the middle of thick bone is less dense
    frac = np.clip((d_out - head.scalp) / np.maximum(g["skull"], 1e-3), 0, 1)
    bone_hu = HU_BONE - (HU_BONE - HU_DIPLOE) * np.exp(-(((frac - 0.5) / 0.18) ** 2))
    hu[bone] = bone_hu[bone]
    intracranial = d_in >= 0

    # brain: white matter core, grey ribbon, sulci, CSF rim
    tex = _smooth_noise(rng, shape, 24) * 2.0 + _smooth_noise(rng, shape, 64) * 1.5
    brain = np.where(d_in < 4.0 + 1.5 * _smooth_noise(rng, shape, 12), HU_GREY, HU_WHITE) + tex
    # gyri: CSF lines running inwards, their phase perturbed so they wander
    arc = theta * (2 * np.pi * 72.0 / head.gyr_lambda)
    phase = 2.5 * _smooth_noise(rng, shape, head.gyr_phase_cells)
    gyr = np.cos(arc + phase)
    sulc_depth = 9.0 + 6.0 * _smooth_noise(rng, shape, 10)
    sulcus = (gyr > 0.93) & (d_in < sulc_depth)
    grey_near = (gyr > 0.6) & (d_in < sulc_depth + 3.0)
    brain = np.where(grey_near & ~sulcus, HU_GREY + tex, brain)
    brain = np.where(sulcus, HU_CSF + 2.0, brain)
    brain = np.where(d_in < 1.2, HU_CSF + 3.0, brain)  # subarachnoid CSF under the table
    if -0.25 < zn < 0.3:
        # deep grey nuclei (basal ganglia, thalami)
        for sx in (-1, 1):
            bg = ((x - sx * 20) / 9) ** 2 + ((y + 5) / 14) ** 2 < 1
            th = ((x - sx * 9) / 8) ** 2 + ((y - 16) / 10) ** 2 < 1
            brain = np.where(bg | th, HU_GREY - 2 + tex, brain)
    # falx: bright-ish midline line in the interhemispheric fissure
    falx = (np.abs(x) < 1.0) & (np.abs(y) > 30) & (zn > -0.2)
    brain = np.where(falx, 48.0, brain)
    if head.falx_calc and zn > 0.2:
        calc = (np.abs(x) < 1.2) & (np.abs(y + 40 * np.sign(zn - 0.5)) < 6)
        brain = np.where(calc, 220.0, brain)
    # ventricles
    if -0.05 < zn < 0.5:
        w = head.vent_w * (1.0 - ((zn - 0.2) / 0.3) ** 2) + 1.0
        for sx in (-1, 1):
            lat = ((x - sx * head.vent_x) / w) ** 2 + ((y - 2) / 28) ** 2 < 1
            horn = ((x - sx * (head.vent_x + 4)) / (w * 0.7)) ** 2 + ((y - 26) / 8) ** 2 < 1
            brain = np.where(lat | horn, HU_CSF, brain)
            if head.choroid and 0.02 < zn < 0.32:
                cp = np.sqrt((x - sx * (head.vent_x + 5)) ** 2 + (y - 24) ** 2) < 3.0
                brain = np.where(cp, 180.0, brain)
    if -0.3 < zn < 0.0:
        third = (np.abs(x) < 2.5) & (np.abs(y - 5) < 16)
        brain = np.where(third, HU_CSF, brain)
        if head.pineal:
            brain = np.where(np.sqrt(x**2 + (y - 24) ** 2) < 2.5, 160.0, brain)
    if -0.7 < zn < -0.35:
        # posterior fossa: fourth ventricle, petrous ridges and clivus (bone inside the head)
        brain = np.where((np.abs(x) < 6) & (np.abs(y - 35) < 5), HU_CSF, brain)
        for sx in (-1, 1):
            u = (x - sx * 28) * np.cos(sx * 0.7) + (y - 5) * np.sin(sx * 0.7)
            v = -(x - sx * 28) * np.sin(sx * 0.7) + (y - 5) * np.cos(sx * 0.7)
            petrous = (np.abs(u) < 22) & (np.abs(v) < 5 + 2 * _smooth_noise(rng, shape, 8))
            brain = np.where(petrous, HU_BONE, brain)
        clivus = (np.abs(x) < 7) & (np.abs(y + 8) < 10)
        brain = np.where(clivus, HU_BONE * 0.9, brain)
        sinus = (np.sqrt((x / 14) ** 2 + ((y + 48) / 10) ** 2) < 1) & (zn < -0.5)
        brain = np.where(sinus, HU_AIR, brain)
    hu = np.where(intracranial, brain, hu)

    if head.streaks and zn < -0.3:
        # beam hardening between dense bones: alternating dark/bright streaks
        ang = rng.uniform(-0.4, 0.4)
        s = np.sin((x * np.cos(ang) + y * np.sin(ang)) / 2.0 + rng.uniform(0, 6))
        band = np.exp(-(((y - 8) / 9.0) ** 2)) * (0.5 + 0.5 * _smooth_noise(rng, shape, 6))
        streak = intracranial & (np.abs(s) > 0.9)
        hu = np.where(streak, hu + np.sign(s) * rng.uniform(10, 25) * band, hu)
    if head.headrest:
        # the curved head holder under the occiput, thin and bright
        r = np.sqrt((x / (head.a + 22)) ** 2 + ((y - 5) / (head.b + 18)) ** 2)
        rest = (np.abs(r - 1.0) < 1.2 / (head.b + 18)) & (y > 30)
        hu = np.where(rest, 300.0, hu)
    return hu, {"d_in": d_in, "theta": theta, "intracranial": intracranial, "z": z}


# --------------------------------------------------------------------------------------
# hematomas
# --------------------------------------------------------------------------------------
def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Random rotation matrix, mostly in-plane (bleeds follow the axial anatomy)."""
    yaw = rng.uniform(0, np.pi)
    pitch = rng.uniform(-0.3, 0.3)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rz @ rx


def _make_hematoma(rng: np.random.Generator, head: _Head, cfg: PhantomConfig) -> Hematoma:
    lo, hi = cfg.volume_ml_range
    vol = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    kind = rng.choice(["compact", "lobulated", "subdural", "epidural"], p=[0.4, 0.25, 0.2, 0.15])
    hu = rng.uniform(52.0, 74.0)
    zs = head.z
    if kind in ("compact", "lobulated"):
        # semi-axes with target volume: 4/3 pi abc = vol * 1000
        ratios = rng.uniform(0.6, 1.4, size=3)
        ratios[2] = rng.uniform(0.7, 1.2)
        scale = (vol * 1000.0 / (4.0 / 3.0 * np.pi * np.prod(ratios))) ** (1.0 / 3.0)
        axes = ratios * scale
        if kind == "lobulated":
            axes = axes * 0.65  # lobes add volume back
        # centre: deep (basal ganglia/thalamus) or lobar (can approach the cortex)
        zmin, zmax = max(zs[0], -0.3 * head.c), min(zs[-1], 0.6 * head.c)
        zc = rng.uniform(zmin + 0.5 * axes[2], max(zmin + 0.5 * axes[2], zmax - 0.5 * axes[2]))
        ang = rng.uniform(0, 2 * np.pi)
        reach = rng.uniform(0.0, 0.62) * min(head.a, head.b)
        params: dict[str, Any] = {
            "centre": np.array([reach * np.cos(ang), reach * np.sin(ang), zc]),
            "axes": axes,
            "rot": _random_rotation(rng),
        }
        if kind == "lobulated":
            n = int(rng.integers(3, 6))
            dirs = rng.standard_normal((n, 3))
            dirs[:, 2] *= 0.3
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
            params["lobes"] = [
                (d, rng.uniform(1.0, 1.35), rng.uniform(0.45, 0.65)) for d in dirs
            ]  # (direction, offset in axes units, lobe radius in axes units)
            params["bumps"] = (rng.standard_normal((6, 3)), rng.uniform(0.15, 0.3, size=6))
        edema = rng.uniform(2.0, 5.0) if rng.random() < 0.5 else 0.0
    elif kind == "subdural":
        span = np.deg2rad(rng.uniform(50, 120))
        dz = rng.uniform(25, 45)
        tmax = np.clip((vol * 1000.0) / (0.53 * span * 80 * 2 * dz), 3.0, 18.0)
        params = {
            "theta": rng.uniform(-np.pi, np.pi),
            "span": span,
            "zc": rng.uniform(max(zs[0], -0.2 * head.c), min(zs[-1], 0.6 * head.c)),
            "dz": dz,
            "tmax": tmax,
        }
        edema = 0.0
    else:  # epidural lens
        span = np.deg2rad(rng.uniform(25, 45))
        dz = rng.uniform(18, 32)
        tmax = np.clip((vol * 1000.0) / (0.5 * span * 80 * 2 * dz), 6.0, 24.0)
        params = {
            "theta": rng.uniform(-np.pi, np.pi),
            "span": span,
            "zc": rng.uniform(max(zs[0], -0.2 * head.c), min(zs[-1], 0.6 * head.c)),
            "dz": dz,
            "tmax": tmax,
        }
        edema = 0.0
    return Hematoma(kind=str(kind), target_ml=vol, hu=hu, edema_mm=edema, params=params)


def _blob_level(h: Hematoma, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
    """Normalised level of an intra-axial blob: < 1 inside; smooth so a rim can be drawn."""
    p = h.params
    d = np.stack([x - p["centre"][0], y - p["centre"][1], np.full_like(x, z - p["centre"][2])])
    rot = p["rot"].T.astype(np.float32)
    local = np.tensordot(rot, d, axes=1) / p["axes"].astype(np.float32)[:, None, None]
    rho = np.sqrt((local**2).sum(0))
    if h.kind == "lobulated":
        for direction, off, rad in p["lobes"]:
            dl = local - (direction * off)[:, None, None]
            rho = np.minimum(rho, np.sqrt((dl**2).sum(0)) / rad)
        vecs, amps = p["bumps"]
        u = local / np.maximum(np.sqrt((local**2).sum(0)), 1e-6)
        bump = np.zeros_like(rho)
        for v, a in zip(vecs, amps):
            c = np.tensordot((v / np.linalg.norm(v)).astype(np.float32), u, axes=1)
            bump += np.float32(a) * c * c * c
        rho = rho / (1.0 + bump)
    return rho


def _extra_axial(h: Hematoma, geo: dict[str, np.ndarray]) -> np.ndarray:
    """Boolean mask of a subdural crescent or epidural lens on one slice."""
    p = h.params
    dth = _angle_diff(geo["theta"], p["theta"]) / (p["span"] / 2)
    dzz = (geo["z"] - p["zc"]) / p["dz"]
    if h.kind == "subdural":
        t = p["tmax"] * np.clip(1 - dth**2, 0, None) ** 0.5 * max(0.0, 1 - dzz**2) ** 0.5
    else:
        t = p["tmax"] * np.sqrt(np.clip(1 - dth**2 - dzz**2, 0, None))
    return geo["intracranial"] & (geo["d_in"] < t) & (t > 0)


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
    head = _Head(rng, cfg, n_slices)
    n_bleeds = 0
    if rng.random() >= cfg.p_no_bleed:
        n_bleeds = 2 if rng.random() < cfg.p_two_bleeds else 1
    bleeds = [_make_hematoma(rng, head, cfg) for _ in range(n_bleeds)]

    x, y = head.coords(size, spacing_rc)
    px_mm = spacing
    images = np.empty((n_slices, size, size), dtype=np.uint8)
    masks = np.zeros((n_slices, size, size), dtype=bool)
    min_dist = np.full(len(bleeds), np.inf)
    blur = cfg.blur_px * size / 512.0
    for k in range(n_slices):
        hu, geo = _slice_hu(head, k, x, y, cfg, rng, px_mm)
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
                    level = _blob_level(h, x[box], y[box], z)
                    inside[box] = level < 1.0
                    inside &= geo["intracranial"]
                    if h.edema_mm > 0:
                        rim = np.zeros(hu.shape, dtype=bool)
                        rim[box] = level < 1.0 + h.edema_mm / float(np.mean(h.params["axes"]))
                        rim &= ~inside & geo["intracranial"] & (hu < 60)
                        hu = np.where(rim, HU_EDEMA + 3 * _smooth_noise(rng, hu.shape, 16), hu)
            else:
                inside = _extra_axial(h, geo)
            if inside.any():
                tex = 3.0 * _smooth_noise(rng, hu.shape, 32)
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
