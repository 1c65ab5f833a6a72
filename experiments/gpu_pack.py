"""What a GPU machine needs to train the real-CT recipe, packed small, and its results back.

Used by ``experiments/ctich_cv_gpu.sh`` (read that first); three steps:

- ``pack`` (here): the ct-ich slices at the network's input size (the recipe resizes every
  slice to 256 px before anything else, so the 256 px slices are what training sees), masks
  exact (PNG), images WebP at the highest quality whose pack fits the device's 64 MiB with the
  rest of the working tree; the ImageNet encoder in fp16; the wheels the GPU image lacks.
  Everything lands in ``.gpu/`` (git-ignored; slices in ``.gpu/ctich256``) with ``PACK.json``: sizes, the chosen quality and
  its error in grey levels and HU, the encoder's rounding error.
- ``collect RUNS OUT`` (on the device): each fold's tested checkpoint as ``fold<K>.pt``
  (hyper-parameters + fp16 weights: 5 fp32 ones would be over the 64 MiB that come back) and
  ``runs.tar.gz`` with every fold's config, split, metrics, log and training curve.
- ``unpack FILES RUNS`` (here): run folders ``RUNS/cv_lite0_unet/lite0_unet_fold<K>`` that
  ``hemato.cv evaluate`` reads like any other, pointed at the native 512 px data, so the
  out-of-fold figures are measured here exactly as the CPU runs' are.

Hand-written: no library packs a dataset for a size-capped transfer; the WebP/PNG codecs are
OpenCV's, the wheel download pip's.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hemato.data.manifest import read_manifest  # noqa: E402
from hemato.data.readers.images import read_mask, read_slice  # noqa: E402
from hemato.data.transforms import resize_mask, resize_slice  # noqa: E402

# What `python -m hemato.run` + `hemato.cv` import that the device image lacks (KINDS.md's list
# has torch, lightning, torchmetrics, opencv, numpy, scipy, scikit-image, pandas, matplotlib, yaml).
DEVICE_WHEELS = [
    "hydra-core", "omegaconf", "antlr4-python3-runtime", "albumentations", "albucore", "simsimd",
    "stringzilla", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
    "efficientnet-lite-pytorch",
]  # fmt: skip
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
MIB = 1024 * 1024
HU_PER_LEVEL = 120 / 255  # ct-ich's brain window, width 120 HU over 0..255
TRAINING_FILES = ["config.yaml", "split.json", "metrics.json", "provenance.json", "run.log", "csv/metrics.csv"]


def tree_bytes(root: Path = ROOT) -> int:
    """Bytes of what the device tool sends besides carried paths: tracked files that exist and
    untracked files git does not ignore."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return sum((root / p).stat().st_size for p in out.decode().split("\0") if p and (root / p).is_file())


def pack_encoder(dest: Path) -> dict[str, float]:
    """The ImageNet EfficientNet-Lite0 encoder's tensors (classifier dropped), floats in fp16."""
    from hemato.models.lite_unet import _encoder, imagenet_state_dict

    own = _encoder().state_dict()
    state = {k: v for k, v in imagenet_state_dict().items() if k in own}
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(half, dest)
    rel = max(
        float(((half[k].float() - v).abs() / v.abs().clamp_min(1e-3)).max())
        for k, v in state.items()
        if v.is_floating_point()
    )
    return {"bytes": dest.stat().st_size, "max_rel_error": rel}


def pack_wheels(dest: Path) -> list[str]:
    """This machine's versions of DEVICE_WHEELS as CPython 3.12 manylinux wheels (antlr4 has
    no wheel on PyPI: built here, pure Python). Needs the package registry."""
    dest.mkdir(parents=True, exist_ok=True)
    pins = [f"{n}=={metadata.version(n)}" for n in DEVICE_WHEELS]
    antlr = [p for p in pins if p.startswith("antlr4")]
    rest = [p for p in pins if not p.startswith("antlr4")]
    pip = [sys.executable, "-m", "pip", "-q"]
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run(
        [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
         *plat, "-d", str(dest), *rest], check=True)  # fmt: skip
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dest), *antlr], check=True)
    return sorted(p.name for p in dest.glob("*.whl"))


def read_slices(manifest: Path, size: int) -> tuple[pd.DataFrame, list[np.ndarray], list[np.ndarray], float]:
    """Every slice of ``manifest`` as the datamodule caches it: (size, size) uint8 image and
    bool mask; and the factor native/size for the pixel spacing."""
    df, _ = read_manifest(manifest)
    images, masks, scale = [], [], None
    for _, row in df.iterrows():
        img = read_slice(manifest.parent / row["image"])
        scale = scale or img.shape[0] / size
        images.append(resize_slice(img, size))
        masks.append(resize_mask(read_mask(manifest.parent / row["mask"]), size))
    return df, images, masks, float(scale or 1.0)


def encode(images: list[np.ndarray], quality: int) -> tuple[list[bytes], dict[str, float]]:
    """WebP at ``quality`` (101: lossless), with the decoded error in grey levels and HU."""
    blobs, sq, worst = [], 0.0, 0
    for img in images:
        b = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, quality])[1].tobytes()
        d = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.int16) - img
        sq, worst = sq + float((d.astype(np.float64) ** 2).mean()), max(worst, int(np.abs(d).max()))
        blobs.append(b)
    rmse = (sq / max(len(images), 1)) ** 0.5
    return blobs, {
        "quality": quality,
        "bytes": sum(map(len, blobs)),
        "rmse_levels": round(rmse, 3),
        "max_abs_levels": worst,
        "rmse_hu": round(rmse * HU_PER_LEVEL, 3),
        "max_abs_hu": round(worst * HU_PER_LEVEL, 2),
    }


def pack(manifest: Path, out: Path, size: int, budget_mib: float, qualities: list[int], wheels: bool) -> dict:
    """Write ``out`` (data/, encoder, whl/, PACK.json); refuse when nothing fits the budget."""
    out.mkdir(parents=True, exist_ok=True)
    info: dict = {"source": str(manifest), "size": size, "budget_mib": budget_mib}
    info["encoder"] = {"file": "lite0_imagenet_encoder_fp16.pt", **pack_encoder(out / "lite0_imagenet_encoder_fp16.pt")}
    info["wheels"] = pack_wheels(out / "whl") if wheels else []
    wheel_bytes = sum(p.stat().st_size for p in (out / "whl").glob("*.whl")) if wheels else 0
    df, images, masks, scale = read_slices(manifest, size)
    data = out / "ctich256"
    rows, mask_bytes = [], 0
    for (_, row), m in zip(df.iterrows(), masks):
        rel = Path("masks") / str(row["patient"]) / f"{row['slice_index']}.png"
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data / rel), m.astype(np.uint8) * 255)
        mask_bytes += (data / rel).stat().st_size
        rows.append({**row.to_dict(), "mask": str(rel), "image": f"images/{row['patient']}/{row['slice_index']}.webp"})
    info["tree_bytes"] = tree_bytes()
    spent = (
        info["tree_bytes"] + info["encoder"]["bytes"] + wheel_bytes + mask_bytes + 256 * 1024
    )  # + slices.csv, PACK.json
    tried = []
    for q in qualities:
        blobs, stats = encode(images, q)
        tried.append(stats)
        if spent + stats["bytes"] <= budget_mib * MIB:
            break
    else:
        raise SystemExit(
            f"gpu_pack: {out}: no WebP quality in {qualities} fits {budget_mib} MiB "
            f"(tree {info['tree_bytes'] / MIB:.1f} MiB, images at the lowest {tried[-1]['bytes'] / MIB:.1f} MiB)"
        )
    for r, b in zip(rows, blobs):
        (data / r["image"]).parent.mkdir(parents=True, exist_ok=True)
        (data / r["image"]).write_bytes(b)
    table = pd.DataFrame(rows)
    for c in ("spacing_row_mm", "spacing_col_mm"):
        if c in table:
            table[c] = pd.to_numeric(table[c], errors="coerce") * scale
    table.to_csv(data / "slices.csv", index=False)
    info.update({"images": stats, "tried": tried, "mask_bytes": mask_bytes, "slices": len(rows)})
    info["total_mib"] = round((spent + stats["bytes"]) / MIB, 2)
    (out / "PACK.json").write_text(json.dumps(info, indent=2))
    return info


def collect(runs: Path, out: Path) -> list[str]:
    """Device side: ``fold<K>.pt`` (the tested checkpoint's hyper-parameters + fp16 weights)
    per finished fold and ``runs.tar.gz`` (TRAINING_FILES of each); returns the folds found."""
    from hemato.rundir import tested_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    found = []
    with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:
        for d in sorted(runs.glob("lite0_unet_fold*")):
            for f in TRAINING_FILES:
                if (d / f).is_file():
                    tar.add(d / f, arcname=f"{d.name}/{f}")
            if not (d / "metrics.json").is_file():
                continue
            ck = torch.load(
                tested_checkpoint(d, json.loads((d / "metrics.json").read_text())),
                map_location="cpu",
                weights_only=True,
            )
            sd = {k: v.half() if v.is_floating_point() else v for k, v in ck["state_dict"].items()}
            fold = d.name.removeprefix("lite0_unet_fold")
            torch.save(
                {"hyper_parameters": ck["hyper_parameters"], "state_dict": sd, "epoch": ck.get("epoch")},
                out / f"fold{fold}.pt",
            )
            found.append(fold)
    return found


def unpack(files: Path, runs: Path, manifest: Path) -> list[Path]:
    """Here: a run folder per ``fold<K>.pt`` under ``runs/cv_lite0_unet``, its checkpoint in
    fp32 and its config pointed at ``manifest`` (the native slices)."""
    made = []
    with tarfile.open(files / "runs.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        for pt in sorted(files.glob("fold*.pt")):
            name = f"lite0_unet_fold{pt.stem.removeprefix('fold')}"
            d = runs / "cv_lite0_unet" / name
            (d / "checkpoints").mkdir(parents=True, exist_ok=True)
            for f in TRAINING_FILES:
                m = members.get(f"{name}/{f}")
                if m is not None:
                    (d / f).parent.mkdir(parents=True, exist_ok=True)
                    (d / f).write_bytes(tar.extractfile(m).read())
            ck = torch.load(pt, map_location="cpu", weights_only=True)
            ck["state_dict"] = {k: v.float() if v.is_floating_point() else v for k, v in ck["state_dict"].items()}
            torch.save(ck, d / "checkpoints" / "last.ckpt")
            metrics = json.loads((d / "metrics.json").read_text())
            metrics["device_checkpoint"], metrics["best_checkpoint"] = (
                metrics.get("best_checkpoint"),
                str(d / "checkpoints" / "last.ckpt"),
            )
            metrics["device_test"] = metrics.pop("test", None)  # measured there on the packed slices
            (d / "metrics.json").write_text(json.dumps(metrics, indent=2))
            cfg = yaml.safe_load((d / "config.yaml").read_text())
            cfg["data"]["device_manifest"] = cfg["data"].get("manifest")
            cfg["data"]["manifest"] = cfg["data"]["source"]["path"] = str(manifest)
            (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            made.append(d)
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument(
        "--manifest",
        type=Path,
        default=Path(os.environ.get("HEMATO_CTICH", ROOT.parent / "shared/data/ctich/slices.csv")),
    )
    p.add_argument("--out", type=Path, default=ROOT / ".gpu")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--budget-mib", type=float, default=63.0, help="the device's 64 MiB, less a margin")
    p.add_argument(
        "--qualities", type=int, nargs="+", default=[101, 95, 90, 85, 80, 75], help="WebP, best first (101: lossless)"
    )
    p.add_argument(
        "--no-wheels", action="store_true", help="skip the wheel download (tests; a machine with the packages)"
    )
    c = sub.add_parser("collect")
    c.add_argument("runs", type=Path)
    c.add_argument("out", type=Path)
    u = sub.add_parser("unpack")
    u.add_argument("files", type=Path)
    u.add_argument("runs", type=Path)
    u.add_argument(
        "--manifest",
        type=Path,
        default=Path(os.environ.get("HEMATO_CTICH", ROOT.parent / "shared/data/ctich/slices.csv")),
    )
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        info = pack(a.manifest.resolve(), a.out, a.size, a.budget_mib, a.qualities, not a.no_wheels)
        im = info["images"]
        print(f"packed {info['slices']} slices at {a.size} px: WebP q{im['quality']} {im['bytes'] / MIB:.1f} MiB "
              f"(error rms {im['rmse_hu']} HU, max {im['max_abs_hu']} HU); total with the tree {info['total_mib']} MiB")  # fmt: skip
    elif a.cmd == "collect":
        print("collected folds", " ".join(collect(a.runs, a.out)) or "none")
    else:
        print("\n".join(str(d) for d in unpack(a.files, a.runs, a.manifest.resolve())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
