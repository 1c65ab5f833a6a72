"""From a mask to the numbers of a report: volume (ml) and its status, ABC/2, each bleed's
geometry, coverage (a bleed cut by the scan), the detection limit and the dropped candidates,
and the model's finding in words (never "no bleed")."""

from __future__ import annotations

from typing import Any

import numpy as np

from hemato.data.readers.scan import Scan, missing_slices
from hemato.engine import Contract, candidates, label_bleeds
from hemato.metrics.volume import abc2, volume_from_areas_ml

NO_BLEED_FOUND = "no_bleed_found"  # volume_status when the model counted no bleed: not "ok", not "no bleed"


LOWER_BOUND = "lower_bound"  # volume_status when a bleed reaches the end of the scan or the field of view
EDGE_MARGIN_PX = 2  # a bleed within this many pixels of the frame's edge is cut by the field of view


def coverage_cut(mask: np.ndarray, slice_names: list[str]) -> dict[str, Any] | None:
    """Where a (Z, H, W) bleed mask reaches the end of what was scanned: its first or last
    slice, or within :data:`EDGE_MARGIN_PX` of the frame's edge (rows: anterior/top,
    posterior/bottom as displayed). Returns ``{"reason", "slices", "edges"}`` or None when
    the bleeds lie inside the scan: a bleed cut there is measured only in part."""
    if not mask.any():
        return None
    ends = [k for k in sorted({0, mask.shape[0] - 1}) if mask[k].any()]
    m = EDGE_MARGIN_PX
    edges = [
        name
        for name, part in (
            ("top", mask[:, :m, :]),
            ("bottom", mask[:, -m:, :]),
            ("left", mask[:, :, :m]),
            ("right", mask[:, :, -m:]),
        )
        if part.any()
    ]
    if not ends and not edges:
        return None
    parts = []
    if ends:
        parts.append(
            "a bleed reaches the scan's "
            + " and ".join(("first" if k == 0 else "last") + f" slice ({slice_names[k]})" for k in ends)
        )
    if edges:
        parts.append(f"a bleed reaches the {', '.join(edges)} edge of the field of view")
    return {
        "reason": "; ".join(parts) + ": it may go on beyond what was scanned",
        "slices": [slice_names[k] for k in ends],
        "edges": edges,
    }


def bleed_geometry(mask: np.ndarray, scan: Scan, bleeds: tuple[np.ndarray, int] | None = None) -> list[dict[str, Any]]:
    """Per bleed (3D component of the mask, largest first; ``bleeds`` = its
    :func:`hemato.engine.label_bleeds`, if already computed): voxels, volume (ml, where the
    spacing is known), centroid (slice, row, col) and in mm from the first slice's corner,
    and its slice of largest area; for matching bleeds between two scans."""
    from scipy import ndimage

    labels, n = bleeds if bleeds is not None else label_bleeds(mask)
    out = []
    sp = scan.spacing_mm
    h = scan.thickness_mm
    for lab, box in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        sel = labels[box] == lab
        z, r, c = (float(v) + b.start for v, b in zip(ndimage.center_of_mass(sel), box))
        areas = np.zeros(labels.shape[0], np.int64)
        areas[box[0]] = sel.reshape(sel.shape[0], -1).sum(1)
        vox = int(sel.sum())
        out.append(
            {
                "voxels": vox,
                "volume_ml": vox * sp[0] * sp[1] * h / 1000.0 if sp and h else None,
                "centroid_index": [z, r, c],
                "centroid_mm": [z * h, r * sp[0], c * sp[1]] if sp and h else None,
                "largest_slice": int(np.argmax(areas)),
            }
        )
    return sorted(out, key=lambda b: -b["voxels"])


def detection_limit(probs: np.ndarray, mask: np.ndarray, n_kept: int, con: Contract, scan: Scan) -> dict[str, Any]:
    """The contract's smallest reportable bleed on this scan's grid (native voxels, and ml
    where the spacings are known), and the candidate 3D regions (``probs`` above the
    threshold, (Z, H, W)) that its component rules left out of ``mask`` (``n_kept`` bleeds):
    how many, their voxels together and the largest one's (and ml where known)."""
    vox = int(np.ceil(con.min_component_px / con.grid_scale(*probs.shape[-2:], scan.spacing_mm)))
    vox_ml = None
    if scan.spacing_mm is not None and scan.thickness_mm is not None:
        vox_ml = scan.spacing_mm[0] * scan.spacing_mm[1] * scan.thickness_mm / 1000.0
    labels, n_raw = label_bleeds(candidates(probs, con, scan.image, scan.spacing_mm))
    dropped = labels[(labels > 0) & ~mask]
    sizes = np.bincount(dropped)[1:] if dropped.size else np.zeros(0, int)
    sizes = sizes[sizes > 0]
    total, largest = int(sizes.sum()), int(sizes.max()) if sizes.size else 0
    return {
        "native_voxels": vox,
        "ml": None if vox_ml is None else vox * vox_ml,
        "min_component_hu": con.min_component_hu,
        "min_component_peak": con.min_component_peak,
        "dropped_regions": max(n_raw - n_kept, 0),
        "dropped_voxels": total,
        "dropped_largest_voxels": largest,
        "dropped_ml": None if vox_ml is None else total * vox_ml,
        "dropped_largest_ml": None if vox_ml is None else largest * vox_ml,
    }


def sensitivity_summary(identity: dict[str, Any]) -> str:
    """The model's out-of-fold share of bleeds found by bleed size, from its packed
    provenance (``validation.found_by_size``), in words; says so when it was not recorded."""
    v = (identity.get("provenance") or {}).get("validation") or {}
    by = v.get("found_by_size")
    if not by:
        return "this model's out-of-fold sensitivity by bleed size is not recorded with it"
    parts = [f"{b['found']} of {b['n']} bleeds {b['size']}" for b in by if b["n"]]
    return f"out of fold it found {', '.join(parts)} ({v.get('found_rule', 'found: Dice >= 0.2')})"


def dropped_warning(dl: dict[str, Any], con: Contract) -> str:
    """The warning on candidate regions the bleed rules did not count: how many, how big
    together and the largest, and the rules they fell under."""
    if dl["dropped_ml"] is not None:
        size = f"together {dl['dropped_ml']:.2f} ml, the largest {dl['dropped_largest_ml']:.2f} ml"
        limit = f"{dl['ml']:.2f} ml"
    else:
        size = f"together {dl['dropped_voxels']} voxels, the largest {dl['dropped_largest_voxels']}"
        limit = f"{dl['native_voxels']} voxels"
    rules = [f"at least {limit}"]
    if con.min_component_hu is not None:
        rules.append(f"a mean of at least {con.min_component_hu:g} HU")
    if con.min_component_peak:
        rules.append(f"a highest probability of at least {con.min_component_peak:g}")
    return (
        f"{dl['dropped_regions']} candidate region(s) ({size}) are not counted: the model's bleed rules need "
        + " and ".join(rules)
        + "; they may be bleeds this model missed: look at them"
    )


def validation_summary(identity: dict[str, Any]) -> str | None:
    """One line of the model's cross-validated figures, from its packed provenance (None for
    a model without them)."""
    v = (identity.get("provenance") or {}).get("validation")
    if not v:
        return None
    lo, hi = v.get("dice_patient_ci") or (float("nan"), float("nan"))
    return (
        f"out of fold on {v['n_patients_with_bleed'] + v['n_patients_without_bleed']} patients of its training data's "
        f"collection: per-patient Dice {v['dice_patient']:.2f} [{lo:.2f}, {hi:.2f}] on the {v['n_patients_with_bleed']} "
        f"with bleed, {v['fp_patients']} of {v['n_patients_without_bleed']} bleed-free patients given a bleed "
        "(docs/model_card.md; research use, not a medical device)"
    )


def measure(
    scan: Scan,
    mask: np.ndarray,
    probs: np.ndarray,
    bleeds: tuple[np.ndarray, int],
    con: Contract,
    identity: dict[str, Any],
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """The report's measurement fields (volume_ml, volume_status, abc2, detection_limit,
    finding, coverage), the per-slice areas (px, mm^2) and the warnings they raise, for the
    (Z, H, W) ``mask`` on ``scan``'s grid (``probs`` the network's probabilities, ``bleeds``
    its :func:`hemato.engine.label_bleeds`)."""
    warnings: list[str] = []
    area_px = mask.reshape(mask.shape[0], -1).sum(1)
    extents = scan.slice_extents_mm
    known = scan.spacing_mm is not None and (scan.thickness_mm is not None or extents is not None)
    px_area = scan.spacing_mm[0] * scan.spacing_mm[1] if scan.spacing_mm else None
    slices = [
        {"slice": name, "area_px": int(a), "area_mm2": (float(a) * px_area if px_area else None)}
        for name, a in zip(scan.slice_names, area_px)
    ]
    out: dict[str, Any] = {"volume_ml": None, "volume_status": "ok", "abc2": None}
    if known and extents is not None:  # two or more slice spacings: each slice's own extent
        out["volume_ml"] = float(sum(s["area_mm2"] * e for s, e in zip(slices, extents)) / 1000.0)
        out["volume_status"] = "ok (per-slice extents: the series has more than one slice spacing)"
    elif known:
        out["volume_ml"] = volume_from_areas_ml([s["area_mm2"] for s in slices], scan.thickness_mm)
        out["abc2"] = abc2(mask, scan.spacing_mm, scan.thickness_mm, bleeds=bleeds)
    else:
        missing = [
            k for k, v in (("pixel spacing", scan.spacing_mm), ("slice spacing", scan.thickness_mm)) if v is None
        ]
        out["volume_status"] = f"volume unavailable: {' and '.join(missing)} unknown (give --spacing/--slice-spacing)"
    out["detection_limit"] = detection_limit(probs, mask, bleeds[1], con, scan)
    if out["detection_limit"]["dropped_regions"]:
        warnings.append(dropped_warning(out["detection_limit"], con))
    if bleeds[1] == 0:  # nothing counted: a finding of this model, never "no bleed"
        out["finding"] = f"no bleed found by this model: {sensitivity_summary(identity)}"
        if known:
            out["volume_status"] = NO_BLEED_FOUND
    else:
        out["finding"] = f"{bleeds[1]} bleed(s) found by this model"
    cut = coverage_cut(mask, scan.slice_names)
    out["coverage"] = cut
    if cut and out["volume_ml"] is not None:  # the bleed goes on beyond what was scanned
        out["volume_status"] = LOWER_BOUND
        warnings.append(f"the volume is a lower bound: {cut['reason']}")
    gaps = missing_slices(scan.slice_numbers)
    if gaps:
        out["volume_ml"], out["abc2"] = None, None
        shown = ", ".join(map(str, gaps[:8])) + (" ..." if len(gaps) > 8 else "")
        out["volume_status"] = (
            f"volume refused: the scan is incomplete, slice numbers {shown} are missing between the first and the last slice"
        )
    return out, slices, warnings
