"""Reconstruction kernels of a DICOM CT series: sharp (bone, lung, edge) or soft (brain, soft
tissue), from ConvolutionKernel and SeriesDescription. Hand-written: no library classifies
kernels."""

from __future__ import annotations

import re
from typing import Any

_SHARP_WORDS = ("BONE", "SHARP", "LUNG", "EDGE", "DETAIL")
_SOFT_WORDS = ("SOFT", "STANDARD", "BRAIN", "SMOOTH", "STND")
_PHILIPS_SHARP = {"D", "E", "L", "YA", "YB", "YC", "YD", "YE", "YF"}
_PHILIPS_SOFT = {"A", "B", "C", "UA", "UB", "UC", "UD"}
_NUMBERED = re.compile(r"^([A-Z]{1,2})(\d{2})[A-Z]?$")  # Siemens H30s / Hr38 / J70h / B70f, Canon FC23


def kernel_of(ds: Any) -> str:
    """A dataset's ConvolutionKernel (multi-valued ones joined by '/'), or ''."""
    k = getattr(ds, "ConvolutionKernel", None)
    if k is None:
        return ""
    return "/".join(str(v) for v in k) if isinstance(k, (list, tuple)) or type(k).__name__ == "MultiValue" else str(k)


def kernel_kind(kernel: str, description: str = "") -> str | None:
    """``"sharp"`` (bone / lung / edge reconstructions), ``"soft"`` (brain / soft tissue)
    or None (unknown) from a ConvolutionKernel and a SeriesDescription. Vendor conventions:
    GE words (STANDARD, SOFT, BONE, LUNG, DETAIL, EDGE), Siemens and Canon numbers (H30s, Hr38,
    J70h, FC23: >= 55 sharp, <= 45 soft; Canon FC >= 30 sharp), Philips letters (UA-UC, A-C
    soft; D, E, L, Y* sharp). Hand-written: no library classifies kernels."""
    words = [w for w in re.split(r"[^A-Z0-9]+", f"{kernel} {description}".upper()) if w]
    if any(w.startswith(_SHARP_WORDS) for w in words):
        return "sharp"
    first = (re.split(r"[^A-Za-z0-9]+", kernel.strip()) or [""])[0].upper()
    m = _NUMBERED.match(first)
    if m:
        n = int(m.group(2))
        if m.group(1) == "FC":
            return "sharp" if n >= 30 else "soft"
        return "sharp" if n >= 55 else "soft" if n <= 45 else None
    if first in _PHILIPS_SHARP:
        return "sharp"
    if first in _PHILIPS_SOFT or any(w.startswith(_SOFT_WORDS) for w in words):
        return "soft"
    return None
