"""One patient's scan in, a volume report out.

    python -m hemato.predict --checkpoint CKPT --input PATH --output DIR
        [--spacing ROW_MM COL_MM] [--thickness MM] [--device cpu] [--tta] [--batch-size 16]

PATH: a DICOM series folder, a NIfTI file, a folder of PNG/JPG slices (sorted by the number
in their names) or a manifest ``slices.csv`` of one patient. CKPT: a hemato checkpoint
(``.ckpt``, loaded without executing code) or an ONNX export (``.onnx``, onnxruntime).

DIR receives ``report.json``, ``report.csv`` (one row), ``slices.csv`` (per-slice areas), the
predicted mask in the input's geometry (``mask.nii.gz`` for NIfTI/DICOM, ``mask/*.png`` for
slices) and ``overlays/*.png`` for every slice with bleed. Everything is computed first and
written through a temporary folder, so an error never leaves a partial report.
Without pixel spacing or slice thickness (secondary captures, exported PNGs) the volume is
"unavailable: spacing unknown" unless ``--spacing``/``--thickness`` are given; areas in
pixels are still reported. A spacing is never guessed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

import hemato
from hemato.data.readers.errors import InputError
from hemato.data.readers.images import IMAGE_SUFFIXES, read_slice
from hemato.engine import Contract, segment
from hemato.inference import Forward, onnx_forward, onnx_session, set_threads, torch_forward
from hemato.metrics.volume import abc2, volume_from_areas_ml
from hemato.models.registry import available, build_model
from hemato.privacy import pseudonym


# ------------------------------------------------------------------------------ model
@dataclass
class LoadedModel:
    """A network ready for inference, from a checkpoint or an ONNX file."""

    forward: Forward
    input_size: int
    identity: dict[str, Any]
    net: torch.nn.Module | None = None  # the torch network (None for ONNX)
    contract: Contract | None = None  # preprocessing + post-processing the weights expect

    def __post_init__(self) -> None:
        if self.contract is None:
            self.contract = Contract(input_size=self.input_size, trained_on="unknown (no contract stored)")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(path: str | Path, device: str = "cpu", channels_last: bool | None = None) -> LoadedModel:
    """Load a hemato ``.ckpt`` (``torch.load(weights_only=True)``: no code runs) or ``.onnx``.

    ``channels_last`` (torch only; default: on for CPU, where oneDNN's convolutions are
    faster in that layout, see ``hemato.bench``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint does not exist")
    ident: dict[str, Any] = {"checkpoint": str(path), "sha256": _sha256(path)}
    if path.suffix.lower() == ".onnx":
        try:
            sess = onnx_session(path)
        except Exception as e:
            raise InputError(path, f"not a readable ONNX model ({e.__class__.__name__})") from None
        inp = sess.get_inputs()[0]
        meta = sess.get_modelmeta().custom_metadata_map
        size = inp.shape[-1]
        if not isinstance(size, int) or "hemato_model" not in meta:
            raise InputError(path, "not a hemato ONNX export (no hemato metadata or fixed input size)")
        ident.update({"format": "onnx", "model": json.loads(meta["hemato_model"]), "input_size": size})
        con = contract_from(json.loads(meta["hemato_contract"]) if "hemato_contract" in meta else None, size, 0.5)
        ident["contract"] = con.as_dict()
        return LoadedModel(onnx_forward(sess), size, ident, contract=con)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(path, f"not a loadable checkpoint, or it holds code/objects that are refused ({e.__class__.__name__}: {str(e)[:120]})") from None
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or not isinstance(hp.get("model"), dict) or hp["model"].get("name") not in available():
        raise InputError(path, "not a hemato model checkpoint (no hemato model configuration)")
    size = hp.get("input_size")
    if not isinstance(size, int):
        raise InputError(path, "checkpoint does not record the network's input size")
    kwargs = {k: v for k, v in hp["model"].items() if k != "_target_"}
    net = build_model(**kwargs)
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(path, f"weights do not fit the model configuration ({str(e)[:120]})") from None
    con = contract_from(hp.get("contract"), size, float(hp.get("threshold", 0.5)))
    ident.update({"format": "lightning-checkpoint", "model": kwargs, "input_size": size, "contract": con.as_dict()})
    if channels_last is None:
        channels_last = str(device).startswith("cpu")
    return LoadedModel(torch_forward(net, device, channels_last, fold_bn=True), size, ident, net, con)


def contract_from(stored: dict[str, Any] | None, input_size: int, threshold: float) -> Contract:
    """The contract a checkpoint stores; checkpoints from before contracts get the values
    every hemato model then used (window 40/120, no component filter, radiological)."""
    base = {"input_size": input_size, "threshold": threshold}
    if not stored:
        return Contract(**base, orientation="radiological", trained_on="unknown (checkpoint predates hemato's model contract)")
    return Contract.from_dict({**base, **stored})


# ------------------------------------------------------------------------------ input
@dataclass
class Scan:
    """One patient's slices (Z, H, W) uint8 with geometry and where it came from."""

    image: np.ndarray
    spacing_mm: tuple[float, float] | None
    thickness_mm: float | None
    kind: str
    source: dict[str, str] = field(default_factory=dict)
    slice_names: list[str] = field(default_factory=list)
    nifti_ref: Any = None  # (original image, canonical image) for writing the mask back
    dicom_geometry: dict[str, Any] | None = None


def _natural_key(p: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem))


def read_scan(path: str | Path, level: float = 40.0, width: float = 120.0) -> Scan:
    """Read a DICOM folder, a NIfTI file, a folder of slices or a one-patient manifest."""
    from hemato.data.readers.nifti import window_hu

    path = Path(path)
    if not path.exists():
        raise InputError(path, "input does not exist")
    name = path.name.lower()
    if path.is_file() and (name.endswith(".nii") or name.endswith(".nii.gz")):
        import nibabel as nib

        from hemato.data.readers.nifti import read_nifti

        hu, spacing, thickness, _ = read_nifti(path)
        orig = nib.load(str(path))
        return Scan(window_hu(hu, level, width), spacing, thickness, "nifti",
                    {"spacing": "NIfTI header", "thickness": "NIfTI header"},
                    [str(k) for k in range(hu.shape[0])], (orig, nib.as_closest_canonical(orig)))
    if path.is_file() and name.endswith(".csv"):
        from hemato.data.manifest import load_manifest

        recs = load_manifest(path, require_masks=False)
        if len(recs) != 1:
            raise InputError(path, f"manifest lists {len(recs)} patients; give one patient's manifest")
        r = recs[0]
        return Scan(r.image, r.spacing_mm, r.thickness_mm, "slices",
                    {"spacing": "manifest" if r.spacing_mm else "unknown", "thickness": "manifest" if r.thickness_mm else "unknown"},
                    [str(i) for i in r.slice_index])
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if files:
            imgs = []
            for f in files:
                img = read_slice(f)
                if imgs and img.shape != imgs[0].shape:
                    raise InputError(f, f"size {img.shape} differs from the other slices {imgs[0].shape}")
                imgs.append(img)
            return Scan(np.stack(imgs), None, None, "slices", {"spacing": "unknown", "thickness": "unknown"}, [f.stem for f in files])
        from hemato.data.readers.dicom import read_dicom_series

        hu, spacing, thickness, _pos, geo = read_dicom_series(path, with_geometry=True)
        return Scan(window_hu(hu, level, width), spacing, thickness, "dicom",
                    {"spacing": "DICOM PixelSpacing" if spacing else "unknown", "thickness": "DICOM slice positions" if thickness else "unknown"},
                    [str(k) for k in range(hu.shape[0])], dicom_geometry=geo)
    raise InputError(path, "not a DICOM folder, NIfTI file, slice folder or manifest")


# ------------------------------------------------------------------------------ report
def _overlay(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    cnts, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, cnts, -1, (0, 0, 255), 1)
    return rgb


def _write_mask_nifti(scan: Scan, mask: np.ndarray, path: Path) -> None:
    import nibabel as nib

    if scan.nifti_ref is not None:
        orig, canon = scan.nifti_ref
        data = np.transpose(mask[:, ::-1, ::-1], (2, 1, 0)).astype(np.uint8)  # back to canonical (x, y, z)
        tr = nib.orientations.ornt_transform(nib.io_orientation(canon.affine), nib.io_orientation(orig.affine))
        data = nib.orientations.apply_orientation(data, tr)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data), orig.affine), str(path))
        return
    geo = scan.dicom_geometry or {}
    affine = np.eye(4)
    if geo:
        # DICOM LPS -> NIfTI RAS; voxel (i=col, j=row, k=slice)
        row_dir, col_dir = np.asarray(geo["orientation"][:3]), np.asarray(geo["orientation"][3:])
        normal = np.cross(row_dir, col_dir)
        sr, sc = scan.spacing_mm or (1.0, 1.0)
        affine[:3, 0] = row_dir * sc
        affine[:3, 1] = col_dir * sr
        affine[:3, 2] = normal * (scan.thickness_mm or 1.0)
        affine[:3, 3] = geo["origin"]
        affine = np.diag([-1, -1, 1, 1]) @ affine
    data = np.transpose(mask, (2, 1, 0)).astype(np.uint8)  # (col, row, slice)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def _input_name(path: str | Path) -> str:
    return Path(path).name.removesuffix(".gz").removesuffix(".nii")


def predict(
    checkpoint: str | Path,
    input: str | Path,
    output: str | Path,
    spacing: tuple[float, float] | None = None,
    thickness: float | None = None,
    device: str = "cpu",
    tta: bool = False,
    batch_size: int = 16,
    threshold: float | None = None,
    patient_id: str | None = None,
    progress: bool = False,
    keep_names: bool = False,
    crop: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Segment one scan and write the report into ``output``; returns the report dict.

    ``crop`` runs the network on the head region only and skips slices without head
    (``hemato.inference``; torch checkpoints only, ONNX graphs have a fixed size); ``threads``
    defaults to the physical cores.

    The report names the patient ``patient_id`` if given, else a salted pseudonym of the
    input's name (``hemato.privacy``), or the input's name itself with ``keep_names``."""
    n_threads = set_threads(threads)
    model = load_model(checkpoint, device)
    con = model.contract
    if threshold is not None:
        con = Contract.from_dict({**con.as_dict(), "threshold": float(threshold)})
    scan = read_scan(input, con.window_level, con.window_width)
    crop = bool(crop and con.crop_to_head and model.net is not None)
    if spacing is not None:
        if len(spacing) != 2 or min(spacing) <= 0:
            raise InputError(input, f"--spacing must be two positive mm values, got {spacing}")
        scan.spacing_mm, scan.source["spacing"] = (float(spacing[0]), float(spacing[1])), "--spacing"
    if thickness is not None:
        if not thickness > 0:
            raise InputError(input, f"--thickness must be positive mm, got {thickness}")
        scan.thickness_mm, scan.source["thickness"] = float(thickness), "--thickness"

    _, mask = segment(model.forward, scan.image, con, batch_size=batch_size, tta=tta, progress=progress, crop=crop)
    area_px = mask.reshape(mask.shape[0], -1).sum(1)
    known = scan.spacing_mm is not None and scan.thickness_mm is not None
    report: dict[str, Any] = {
        "patient": patient_id or (_input_name(input) if keep_names else pseudonym(_input_name(input))),
        "volume_ml": None,
        "volume_status": "ok",
        "abc2": None,
        "n_bleed_slices": int((area_px > 0).sum()),
        "n_slices": int(mask.shape[0]),
        "spacing_mm": list(scan.spacing_mm) if scan.spacing_mm else None,
        "thickness_mm": scan.thickness_mm,
        "geometry_source": scan.source,
        "input": {"path": str(input) if keep_names else None, "kind": scan.kind, "shape": list(scan.image.shape)},
        "model": model.identity,
        "threshold": con.threshold,
        "contract": con.as_dict(),
        "tta": tta,
        "inference": {"crop_to_head": crop, "device": device, "threads": n_threads},
        "software": {"hemato": hemato.__version__, "torch": torch.__version__},
    }
    px_area = scan.spacing_mm[0] * scan.spacing_mm[1] if scan.spacing_mm else None
    slices = [{"slice": name, "area_px": int(a), "area_mm2": (float(a) * px_area if px_area else None)} for name, a in zip(scan.slice_names, area_px)]
    if known:
        report["volume_ml"] = volume_from_areas_ml([s["area_mm2"] for s in slices], scan.thickness_mm)
        report["abc2"] = {k: (float(v) if k not in ("n_slices", "slice") else int(v)) for k, v in abc2(mask, scan.spacing_mm, scan.thickness_mm).items()}
    else:
        missing = [k for k, v in (("spacing", scan.spacing_mm), ("thickness", scan.thickness_mm)) if v is None]
        report["volume_status"] = f"volume unavailable: {' and '.join(missing)} unknown (give --spacing/--thickness)"

    # write everything into a temporary folder, then move it into place
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "overlays").mkdir()
        for k in np.flatnonzero(area_px):
            cv2.imwrite(str(tmp / "overlays" / f"slice_{scan.slice_names[k]}.png"), _overlay(scan.image[k], mask[k]))
        if scan.kind in ("nifti", "dicom"):
            _write_mask_nifti(scan, mask, tmp / "mask.nii.gz")
        else:
            (tmp / "mask").mkdir()
            for k, name in enumerate(scan.slice_names):
                cv2.imwrite(str(tmp / "mask" / f"{name}.png"), mask[k].astype(np.uint8) * 255)
        import pandas as pd

        pd.DataFrame(slices).to_csv(tmp / "slices.csv", index=False)
        a = report["abc2"] or {}
        row = {"patient": report["patient"], "volume_ml": report["volume_ml"], "volume_status": report["volume_status"],
               "abc2_ml": a.get("volume_ml"), "A_mm": a.get("A_mm"), "B_mm": a.get("B_mm"), "C_mm": a.get("C_mm"),
               "n_bleed_slices": report["n_bleed_slices"], "slice_areas_mm2": ";".join("" if s["area_mm2"] is None else f"{s['area_mm2']:.2f}" for s in slices),
               "slice_areas_px": ";".join(str(s["area_px"]) for s in slices),
               "spacing_row_mm": scan.spacing_mm[0] if scan.spacing_mm else None, "spacing_col_mm": scan.spacing_mm[1] if scan.spacing_mm else None,
               "thickness_mm": scan.thickness_mm, "spacing_source": scan.source.get("spacing"), "thickness_source": scan.source.get("thickness"),
               "checkpoint": str(checkpoint), "checkpoint_sha256": model.identity["sha256"], "hemato_version": hemato.__version__}
        pd.DataFrame([row]).to_csv(tmp / "report.csv", index=False)
        report["slices"] = slices
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        out.mkdir(parents=True, exist_ok=True)
        for item in tmp.iterdir():
            dest = out / item.name
            if dest.is_dir():
                shutil.rmtree(dest)
            elif dest.exists():
                dest.unlink()
            item.replace(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hemato.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="hemato .ckpt or .onnx")
    ap.add_argument("--input", required=True, help="DICOM folder, NIfTI file, slice folder or slices.csv")
    ap.add_argument("--output", required=True, help="report folder")
    ap.add_argument("--spacing", nargs=2, type=float, metavar=("ROW_MM", "COL_MM"), help="pixel spacing (overrides the file's)")
    ap.add_argument("--thickness", type=float, metavar="MM", help="slice thickness (overrides the file's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tta", action="store_true", help="average with flipped inputs")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--no-crop", action="store_true", help="run the network on the full frame of every slice (default: head region only, slices without head skipped)")
    ap.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    ap.add_argument("--patient-id", help="name to print in the report (default: a salted pseudonym of the input's name)")
    ap.add_argument("--keep-names", action="store_true", help="report the input's own name and path instead of a pseudonym")
    a = ap.parse_args(argv)
    try:
        r = predict(a.checkpoint, a.input, a.output, a.spacing, a.thickness, a.device, a.tta, a.batch_size, patient_id=a.patient_id, progress=True, keep_names=a.keep_names,
                    crop=not a.no_crop, threads=a.threads)
    except InputError as e:
        print(f"hemato.predict: error: {e}", file=sys.stderr)
        return 2
    vol = f"{r['volume_ml']:.2f} ml" if r["volume_ml"] is not None else r["volume_status"]
    abc = f", ABC/2 {r['abc2']['volume_ml']:.2f} ml" if r["abc2"] else ""
    print(f"{r['patient']}: {vol}{abc}, {r['n_bleed_slices']} of {r['n_slices']} slices with bleed -> {a.output}/report.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
