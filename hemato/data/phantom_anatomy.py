"""The phantom's anatomy (:mod:`hemato.data.phantom`): tissue values in HU and an analytic head
(scalp, skull with diploe, CSF, grey and white matter) evaluated slice by slice; the geometry
maps that place bleeds against the inner table."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

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


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth random field in [-1, 1]-ish: a ``cells x cells`` grid upsampled bicubically."""
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def angle_diff(a: np.ndarray, b: float) -> np.ndarray:
    """Signed smallest difference a-b of angles (radians)."""
    return (a - b + np.pi) % (2 * np.pi) - np.pi


class Head:
    """Analytic head of one patient; evaluates tissue maps on one axial slice."""

    def __init__(self, rng: np.random.Generator, cfg: Any, n_slices: int) -> None:
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


def slice_hu(
    head: Head,
    k: int,
    x: np.ndarray,
    y: np.ndarray,
    cfg: Any,
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
    tex = smooth_noise(rng, shape, 24) * 2.0 + smooth_noise(rng, shape, 64) * 1.5
    brain = np.where(d_in < 4.0 + 1.5 * smooth_noise(rng, shape, 12), HU_GREY, HU_WHITE) + tex
    # gyri: CSF lines running inwards, their phase perturbed so they wander
    arc = theta * (2 * np.pi * 72.0 / head.gyr_lambda)
    phase = 2.5 * smooth_noise(rng, shape, head.gyr_phase_cells)
    gyr = np.cos(arc + phase)
    sulc_depth = 9.0 + 6.0 * smooth_noise(rng, shape, 10)
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
            petrous = (np.abs(u) < 22) & (np.abs(v) < 5 + 2 * smooth_noise(rng, shape, 8))
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
        band = np.exp(-(((y - 8) / 9.0) ** 2)) * (0.5 + 0.5 * smooth_noise(rng, shape, 6))
        streak = intracranial & (np.abs(s) > 0.9)
        hu = np.where(streak, hu + np.sign(s) * rng.uniform(10, 25) * band, hu)
    if head.headrest:
        # the curved head holder under the occiput, thin and bright
        r = np.sqrt((x / (head.a + 22)) ** 2 + ((y - 5) / (head.b + 18)) ** 2)
        rest = (np.abs(r - 1.0) < 1.2 / (head.b + 18)) & (y > 30)
        hu = np.where(rest, 300.0, hu)
    return hu, {"d_in": d_in, "theta": theta, "intracranial": intracranial, "z": z}
