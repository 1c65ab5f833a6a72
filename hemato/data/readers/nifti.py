"""NIfTI volumes (nibabel): axial slices, spacing from the header, HU windowed to 0..255."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hemato.data.readers.contract import Scan
from hemato.data.readers.errors import InputError
from hemato.data.readers.intensity import window_hu  # noqa: F401  (re-exported: older imports)

MAX_VOXELS = 2**28  # 1024 x 1024 x 256: larger headers are corrupt, not CT
QFORM_SFORM_TOL_MM = 1.0  # qform and sform may differ by rounding; beyond this at any corner: refused


def check_qform_sform(img: object, path: Path) -> None:
    """Refuse a header whose qform and sform (both set) place the volume differently:
    more than :data:`QFORM_SFORM_TOL_MM` apart at any of its 8 corner voxels. Readers that
    prefer one or the other (nibabel, ITK, FSL) would measure different volumes."""
    h = img.header  # type: ignore[attr-defined]
    if int(h["sform_code"]) <= 0 or int(h["qform_code"]) <= 0:
        return
    q, s = h.get_qform(), h.get_sform()
    shape = np.asarray(img.shape[:3], float) - 1  # type: ignore[attr-defined]
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0]) for j in (0, shape[1]) for k in (0, shape[2])]).T
    gap = float(np.abs((q - s) @ corners)[:3].max())
    if gap > QFORM_SFORM_TOL_MM:
        vq, vs = (np.linalg.norm(a[:3, :3], axis=0) for a in (q, s))
        raise InputError(
            path,
            f"qform and sform disagree by {gap:.1f} mm at the volume's corners (qform voxels "
            f"{' x '.join(f'{v:.3g}' for v in vq)} mm, sform {' x '.join(f'{v:.3g}' for v in vs)} mm): "
            "the geometry is ambiguous; make them agree (e.g. set the qform from the sform)",
        )


def read_nifti(path: str | Path, kind: str = "image") -> Scan:
    """Read a NIfTI file as axial slices: a :class:`~hemato.data.readers.contract.Scan` (``image``
    (Z, H, W) float64 in the file's values, HU for CT; spacing (row, col) mm, slice spacing mm,
    the canonical affine, ``nifti_ref`` (original and canonical images) for writing a mask back)
    (lengths in mm whatever unit the header states; geometry from the affine nibabel
    chooses, the sform when set, refused when qform and sform disagree; the slice spacing is the distance
    between slice planes, from the affine's determinant, so sheared grids measure right); the
    volume is first reoriented to the closest canonical (RAS+) orientation, so the third
    voxel axis runs inferior -> superior, and each slice is displayed radiologically
    (anterior up). ``kind="mask"`` requires binary values.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file does not exist")
    try:
        raw = nib.load(str(path))
        check_qform_sform(raw, path)
        img = nib.as_closest_canonical(raw)
        n_vox = int(np.prod(img.shape, dtype=np.float64))
        if n_vox > MAX_VOXELS or n_vox <= 0:
            raise InputError(path, f"implausible volume shape {img.shape} in the header")
        data = np.asarray(img.dataobj, dtype=np.float64)
    except InputError:
        raise
    except Exception as e:  # nibabel raises many types for corrupt files
        raise InputError(path, f"not a readable NIfTI file ({e.__class__.__name__}: {str(e)[:80]})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(path, f"expected a 3D volume, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise InputError(path, f"{int((~np.isfinite(data)).sum())} NaN/inf voxels")
    # voxel steps from the affine nibabel uses (the sform when set, else the qform): the
    # header's pixdim (get_zooms) belongs to the qform and may differ from an sform
    zooms = [float(z) for z in np.linalg.norm(img.affine[:3, :3], axis=0)]
    if not all(np.isfinite(z) and z > 0 for z in zooms):
        raise InputError(path, f"invalid voxel size {zooms} in the header's affine")
    unit = img.header.get_xyzt_units()[0]
    scale = {"mm": 1.0, "unknown": 1.0, "meter": 1000.0, "micron": 0.001}.get(unit)
    if scale is None:
        raise InputError(path, f"spatial unit {unit!r} in the header is not a length")
    zooms = [z * scale for z in zooms]
    # the voxel volume is |det| of the affine's 3x3 part, which equals the product of the
    # zooms only for an orthogonal grid; a sheared grid (gantry tilt) has a smaller one: the
    # slice spacing reported is the distance between slice planes, det / in-plane pixel area
    det = abs(float(np.linalg.det(img.affine[:3, :3]))) * scale**3
    if not np.isfinite(det) or det <= 0:
        raise InputError(path, "singular affine in the header")
    # RAS voxel axes (x: left->right, y: posterior->anterior, z: inferior->superior);
    # slice k = data[:, :, k]; display rows = anterior->posterior, cols = patient right->left
    slices = np.transpose(data, (2, 1, 0))[:, ::-1, ::-1]
    spacing = (zooms[1], zooms[0])
    slice_spacing = det / (zooms[0] * zooms[1])
    if kind == "mask":
        values = np.unique(slices)
        if not set(values.tolist()) <= {0.0, 1.0} and not set(values.tolist()) <= {0.0, 255.0}:
            raise InputError(path, f"mask is not binary (values {values[:6].tolist()}...)")
    return Scan(
        np.ascontiguousarray(slices),
        spacing,
        slice_spacing,
        "nifti",
        {"spacing": "NIfTI header", "thickness": "NIfTI affine (distance between slice planes)"},
        [str(k) for k in range(slices.shape[0])],
        intensity="mask" if kind == "mask" else "hu",
        affine=img.affine,
        nifti_ref=(raw, img),
    )


def write_mask_nifti(scan: Scan, mask: np.ndarray, path: Path) -> None:
    """The (Z, H, W) ``mask`` as a uint8 NIfTI in ``scan``'s own geometry: a NIfTI input's
    original affine and axis order, or a DICOM series' patient frame (RAS, from its positions)."""
    import nibabel as nib

    if scan.nifti_ref is not None:
        orig, canon = scan.nifti_ref
        data = np.transpose(mask[:, ::-1, ::-1], (2, 1, 0)).astype(np.uint8)  # back to canonical (x, y, z)
        tr = nib.orientations.ornt_transform(nib.io_orientation(canon.affine), nib.io_orientation(orig.affine))
        data = nib.orientations.apply_orientation(data, tr)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data), orig.affine), str(path))
        return
    if scan.affine is None:
        raise ValueError(f"{scan.kind} scan without an affine: no NIfTI geometry to write the mask in")
    data = np.transpose(mask, (2, 1, 0)).astype(np.uint8)  # (col, row, slice)
    nib.save(nib.Nifti1Image(data, scan.affine), str(path))
