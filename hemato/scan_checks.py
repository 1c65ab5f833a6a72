"""Is this a head CT the model can measure? Checks on a windowed scan before it is measured.

Written here because no library checks it: the rules are the model's training data's
(ct-ich, 40/120 HU window, bone saturated at the top of the window).

- :func:`intensity_profile` / :func:`intensity_flags`: the brain's median HU, the share of
  voxels at the window's top and the image noise, flagged outside what the 60 ct-ich
  patients span (measured with this code, reports/ctich/intensity_profile.csv).
- :func:`not_a_head`: refuses a scan without a skull around the brain on its middle slices
  (the bone's convex hull covers >= 85 % of the head outline on some middle slice of every
  one of the 60 ct-ich patients, a craniectomy-like open skull included; an abdomen's spine
  covers a few %), a body outline larger than any head, and a DICOM BodyPartExamined that
  names another body part.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from hemato.inference import BONE

MIN_SKULL_HULL = 0.5  # share of the outline inside the bone's convex hull; ct-ich: >= 0.85 on every patient
MAX_HEAD_AREA_CM2 = 450.0  # an adult head's largest axial section is ~250 cm2; a torso's > 600
HEAD_PARTS = ("HEAD", "BRAIN", "SKULL", "CRANIUM", "NEURO", "HEADNECK")
OUTLINE_MIN = 16  # windowed value (~ -12 HU) above which a pixel is body: clear of compression noise in air
CHECK_SIDE = 128  # slices are judged at this size (pixels), for speed


HEAD_SLICES = 8  # middle slices judged by not_a_head
PROFILE_SLICES = 6  # middle slices measured by intensity_profile (native resolution)


def middle_slices(image: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` slices spread evenly over the middle third of a (Z, H, W) stack."""
    z = image.shape[0]
    lo, hi = z // 3, max(z // 3 + 1, 2 * z // 3)
    return image[np.unique(np.linspace(lo, hi - 1, min(n, hi - lo)).round().astype(int))]


def _outline(img: np.ndarray) -> np.ndarray:
    """(H, W) uint8 windowed slice -> the largest non-air region, holes filled."""
    body = ndi.binary_opening(img > OUTLINE_MIN, structure=np.ones((3, 3), bool))
    lab, n = ndi.label(body)
    if n == 0:
        return body
    sizes = ndi.sum(body, lab, index=range(1, n + 1))
    return ndi.binary_fill_holes(lab == 1 + int(np.argmax(sizes)))


def skull_cover(img: np.ndarray) -> float:
    """(H, W) uint8 windowed slice -> the share of the body outline inside the convex hull of
    its bone (0 without bone): ~1 for a slice through the skull, small for an abdomen's spine."""
    from skimage.morphology import convex_hull_image

    body = _outline(img)
    bone = (img >= BONE) & body
    if body.sum() == 0 or bone.sum() < 10:
        return 0.0
    return float((convex_hull_image(bone) & body).sum() / body.sum())


def not_a_head(image: np.ndarray, spacing_mm: tuple[float, float] | None, body_part: str | None = None) -> str | None:
    """(Z, H, W) uint8 windowed scan (``spacing_mm`` row, col or None; ``body_part`` a DICOM
    BodyPartExamined) -> why it is not a head CT, or None when it looks like one."""
    import cv2

    if body_part and not any(p in body_part.replace(" ", "").replace("_", "") for p in HEAD_PARTS):
        return f"BodyPartExamined is {body_part}: hemato measures head CT only"
    z, h, w = image.shape
    scale = CHECK_SIDE / max(h, w)
    cover, area = 0.0, 0.0
    for sl in middle_slices(image, HEAD_SLICES):
        img = cv2.resize(sl, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        cover = max(cover, skull_cover(img))
        if spacing_mm is not None:
            area = max(area, _outline(img).sum() * spacing_mm[0] * spacing_mm[1] / scale**2 / 100.0)
    if area > MAX_HEAD_AREA_CM2:
        return f"the body outline reaches {area:.0f} cm2 on the middle slices, larger than a head: not a head CT"
    if cover < MIN_SKULL_HULL:
        return (
            f"no skull around the middle slices (bone encloses at most {100 * cover:.0f} % of the outline): "
            "not a head CT, or not in HU"
        )
    return None


def intensity_profile(image: np.ndarray, level: float = 40.0, width: float = 120.0) -> dict[str, float | None]:
    """(Z, H, W) uint8 scan in the ``level``/``width`` window -> on its middle third of
    slices: ``top_share`` (share of the head's voxels at the window's top: bone and
    brighter), ``brain_median_hu`` (median inside the intracranial cavity, bone excluded) and
    ``noise_hu`` (image noise: sqrt(pi / 2) x the mean absolute horizontal neighbour
    difference between brain-range pixels (10-50 HU) inside the cavity (its largest 1 %
    left out: edges), / sqrt 2; correlated CT noise reads lower than its pixel SD,
    consistently so). None where no
    cavity is found."""
    from hemato.inference import intracranial_mask

    mid = middle_slices(image, PROFILE_SLICES)
    lo_hu = level - width / 2
    to_level = lambda hu: (hu - lo_hu) / width * 255.0  # noqa: E731
    head = mid > OUTLINE_MIN
    top = float((mid[head] >= 255).mean()) if head.any() else None
    inside, diffs = [], []
    for img in mid:
        cav = intracranial_mask(img)
        if not cav.any():
            continue
        inside.append(img[cav])
        core = ndi.binary_erosion(cav, iterations=2) & (img >= to_level(10)) & (img <= to_level(50))
        pair = core[:, 1:] & core[:, :-1]
        diffs.append((img[:, 1:].astype(np.int16) - img[:, :-1].astype(np.int16))[pair])
    if not inside:
        return {"top_share": top, "brain_median_hu": None, "noise_hu": None}
    brain = np.concatenate(inside)
    d = np.concatenate(diffs).astype(np.float64)
    per = width / 255.0
    noise = None
    if d.size > 100:
        a = np.abs(d)
        a = a[a <= np.quantile(a, 0.99)]
        noise = float(np.sqrt(np.pi / 2) * a.mean() / np.sqrt(2) * per)
    return {
        "top_share": top,
        "brain_median_hu": float(np.median(brain)) * per + lo_hu,
        "noise_hu": noise,
    }


# the 60 ct-ich patients, measured by intensity_profile (reports/ctich/intensity_profile.csv):
# brain median 30.8-39.8 HU, top share 0.13-0.30, noise 0.98-2.64 HU (5 / 10 / 20 HU of added
# white noise read 5.0 / 8.2 / 10.7: the brain-range band truncates large noise)
BRAIN_HU_RANGE = (25.0, 45.0)
MAX_TOP_SHARE = 0.45
MAX_NOISE_HU = 4.0


def intensity_flags(profile: dict[str, float | None]) -> list[str]:
    """Flags of an :func:`intensity_profile` outside the training scans' span, each naming
    what is unusual and the span."""
    flags = []
    med, top, noise = profile.get("brain_median_hu"), profile.get("top_share"), profile.get("noise_hu")
    if med is not None and not BRAIN_HU_RANGE[0] <= med <= BRAIN_HU_RANGE[1]:
        flags.append(
            f"the brain's median is {med:.0f} HU, outside {BRAIN_HU_RANGE[0]:g}-{BRAIN_HU_RANGE[1]:g} HU (the training "
            "scans: 31-40 HU): an unusual intensity calibration or not HU"
        )
    if top is not None and top > MAX_TOP_SHARE:
        flags.append(
            f"{100 * top:.0f} % of the head's voxels are at the top of the window (bone or brighter; the training scans: "
            f"at most 30 %): unusually many bright voxels"
        )
    if noise is not None and noise > MAX_NOISE_HU:
        flags.append(
            f"image noise ~{noise:.1f} HU in the brain, above the training scans' 1.0-2.6 HU (same estimate): a sharp "
            "kernel, thin slices or a low dose; the model's volume may change with noise"
        )
    return flags
