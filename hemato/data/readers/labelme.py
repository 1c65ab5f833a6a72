"""Labelme JSON (the paper's annotation tool): polygons rasterised to a binary mask."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from hemato.data.readers.errors import InputError


def read_labelme(
    path: str | Path, labels: Iterable[str] | None = None, shape_hw: tuple[int, int] | None = None
) -> np.ndarray:
    """(H, W) bool mask of the polygons (and rectangles) in a Labelme file.

    ``labels``: keep only shapes with these labels (default: every shape). The size comes
    from ``imageHeight``/``imageWidth`` (or ``shape_hw``). As in Labelme's own
    ``shape_to_mask``, vertex coordinates are pixel centres and boundary pixels are inside:
    a rectangle from (0, 0) to (9, 9) covers 10 x 10 pixels.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "file does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not valid Labelme JSON ({e.__class__.__name__})") from None
    if not isinstance(doc, dict) or "shapes" not in doc:
        raise InputError(path, "not a Labelme file (no 'shapes')")
    h = doc.get("imageHeight") or (shape_hw[0] if shape_hw else None)
    w = doc.get("imageWidth") or (shape_hw[1] if shape_hw else None)
    if not h or not w:
        raise InputError(path, "image size unknown (no imageHeight/imageWidth)")
    keep = set(labels) if labels is not None else None
    mask = np.zeros((int(h), int(w)), np.uint8)
    for i, shape in enumerate(doc["shapes"]):
        if keep is not None and shape.get("label") not in keep:
            continue
        kind = shape.get("shape_type", "polygon")
        try:
            pts = np.asarray(shape["points"], dtype=np.float64)
        except (KeyError, ValueError, TypeError):
            raise InputError(path, f"shape {i} has no valid points") from None
        if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
            raise InputError(path, f"shape {i} has malformed points")
        if kind == "rectangle" and len(pts) == 2:
            (x0, y0), (x1, y1) = pts
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        elif kind != "polygon" or len(pts) < 3:
            raise InputError(
                path, f"shape {i}: only polygons and rectangles are supported (got {kind} with {len(pts)} points)"
            )
        # fillPoly works on integer vertices; 8 sub-pixel bits keep Labelme's float corners
        shift = 8
        verts = np.round(pts * (1 << shift)).astype(np.int32)
        cv2.fillPoly(mask, [verts], 1, lineType=cv2.LINE_8, shift=shift)
    return mask.astype(bool)
