"""The phantom's hematomas (:mod:`hemato.data.phantom`): intraparenchymal blobs (compact or
lobulated, with edema) and extra-axial lenses (subdural crescents, epidural lenses) against the
inner table; exact shapes, so their volumes are known."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hemato.data.phantom_anatomy import angle_diff


@dataclass
class Hematoma:
    """One generated bleed: its kind, target volume and what makes it a subgroup member."""

    kind: str  # "compact" | "lobulated" | "subdural" | "epidural"
    target_ml: float
    hu: float
    edema_mm: float
    params: dict[str, Any] = field(default_factory=dict)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Random rotation matrix, mostly in-plane (bleeds follow the axial anatomy)."""
    yaw = rng.uniform(0, np.pi)
    pitch = rng.uniform(-0.3, 0.3)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rz @ rx


# extra-axial lenses: span (degrees), half-height dz (mm), shape factor, thickness range (mm)
LENSES = {"subdural": ((50, 120), (25, 45), 0.53, (3.0, 18.0)), "epidural": ((25, 45), (18, 32), 0.5, (6.0, 24.0))}


def _lens(rng: np.random.Generator, kind: str, vol: float, zs: np.ndarray, head: Any) -> dict[str, Any]:
    """Shape of an extra-axial lens of ``vol`` ml: its angular span, height and greatest
    thickness (sized so the lens holds about ``vol``), direction and height in the head."""
    spans, dzs, shape, (t_lo, t_hi) = LENSES[kind]
    span = np.deg2rad(rng.uniform(*spans))
    dz = rng.uniform(*dzs)
    tmax = np.clip((vol * 1000.0) / (shape * span * 80 * 2 * dz), t_lo, t_hi)
    return {
        "theta": rng.uniform(-np.pi, np.pi),
        "span": span,
        "zc": rng.uniform(max(zs[0], -0.2 * head.c), min(zs[-1], 0.6 * head.c)),
        "dz": dz,
        "tmax": tmax,
    }


def make_hematoma(rng: np.random.Generator, head: Any, cfg: Any) -> Hematoma:
    """One random bleed inside ``head`` (the phantom's head model) for ``cfg`` (its PhantomConfig):
    kind, volume (ml, log-uniform in ``cfg.volume_ml_range``), HU, edema and shape parameters."""
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
    else:  # a subdural crescent or an epidural lens
        params, edema = _lens(rng, str(kind), vol, zs, head), 0.0
    return Hematoma(kind=str(kind), target_ml=vol, hu=hu, edema_mm=edema, params=params)


def blob_level(h: Hematoma, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
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


def extra_axial(h: Hematoma, geo: dict[str, np.ndarray]) -> np.ndarray:
    """Boolean mask of a subdural crescent or epidural lens on one slice."""
    p = h.params
    dth = angle_diff(geo["theta"], p["theta"]) / (p["span"] / 2)
    dzz = (geo["z"] - p["zc"]) / p["dz"]
    if h.kind == "subdural":
        t = p["tmax"] * np.clip(1 - dth**2, 0, None) ** 0.5 * max(0.0, 1 - dzz**2) ** 0.5
    else:
        t = p["tmax"] * np.sqrt(np.clip(1 - dth**2 - dzz**2, 0, None))
    return geo["intracranial"] & (geo["d_in"] < t) & (t > 0)
