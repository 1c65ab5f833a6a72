"""Volume stability under image noise (issue 27 item 2, issue 23 item 5): each fold model's
test patients of ct-ich, with Gaussian noise of sigma 5 / 10 / 20 HU added in HU (inside the
head; air stays air) and windowed again, through the one engine (``hemato.engine.segment``
with the model's contract, as ``hemato.cv evaluate``), against the same model on the clean
slices and against the truth.

    python experiments/noise_stability.py LABEL=RUN_DIR [LABEL=PACKED.pt@FOLD ...] --out reports/ctich/v7_ship/noise
        [--sigmas 0 5 10 20] [--seed 0] [--manifest ../shared/data/ctich/slices.csv]

RUN_DIR: a finished fold run (its tested checkpoint and test patients); PACKED.pt@FOLD: the
member of packed weights trained without fold FOLD (e.g. the v4 ensemble's), on that fold's
test patients.

Writes ``noise_patients.csv`` (one row per model, patient, sigma: truth and predicted voxels,
Dice) and ``noise.md`` (per model and sigma: mean per-patient Dice of the patients with
bleed, bleeds found (Dice >= 0.2), median abs(predicted / clean - 1) of the bleeds of >= 2 ml,
bleed-free patients given a bleed). Prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from hemato.data.manifest import load_manifest
from hemato.engine import segment
from hemato.evaluation.oof import FOUND_DICE, VOXEL_ML
from hemato.rundir import tested_checkpoint
from hemato.weights.load import load_model


def noisy(image: np.ndarray, sigma: float, rng: np.random.Generator, level: float, width: float) -> np.ndarray:
    """(Z, H, W) uint8 windowed slices with Gaussian noise of ``sigma`` HU added where the
    head is (value > 0), windowed again."""
    if sigma == 0:
        return image
    lo = level - width / 2
    hu = image.astype(np.float64) / 255.0 * width + lo
    hu = hu + rng.normal(0.0, sigma, hu.shape) * (image > 0)
    return np.clip(np.rint((hu - lo) / width * 255.0), 0, 255).astype(np.uint8)


def model_and_patients(spec: str, tmp: Path) -> tuple[object, list[str], str]:
    """(loaded model, its test patients, a name) of RUN_DIR or PACKED.pt@FOLD."""
    import torch

    if "@" in spec:
        path, fold = spec.rsplit("@", 1)
        blob = torch.load(path, map_location="cpu", weights_only=True)
        (k,) = [i for i, m in enumerate(blob["provenance"]["members"]) if m["fold"] == int(fold)]
        one = tmp / f"member{fold}.pt"
        torch.save({**blob, "members": [blob["members"][k]]}, one)
        return (
            load_model(one, precision="32"),
            blob["provenance"]["members"][k]["test_patients"],
            f"{Path(path).name}@{fold}",
        )
    run_dir = Path(spec)
    split = json.loads((run_dir / "split.json").read_text())["split"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return load_model(tested_checkpoint(run_dir, metrics), precision="32"), split["test"], run_dir.name


def run(label: str, spec: str, manifest: str, sigmas: list[float], seed: int, tmp: Path) -> list[dict]:
    model, test, name = model_and_patients(spec, tmp)
    con = model.contract
    recs = [r for r in load_manifest(manifest) if r.patient_id in set(test)]
    rows = []
    for r in recs:
        truth = np.asarray(r.mask, bool)
        for s in sigmas:
            rng = np.random.default_rng([seed, int(r.patient_id), int(s)])
            _, mask = segment(model.forward, noisy(r.image, s, rng, con.window_level, con.window_width), con)
            inter, p, g = int((mask & truth).sum()), int(mask.sum()), int(truth.sum())
            rows.append(
                {
                    "model": label,
                    "run": name,
                    "patient_id": r.patient_id,
                    "sigma_hu": s,
                    "gt": g,
                    "pred": p,
                    "dice": 2 * inter / (p + g) if g else np.nan,
                }
            )
    return rows


def summary(t: pd.DataFrame) -> pd.DataFrame:
    out = []
    clean = t[t["sigma_hu"] == 0].set_index(["model", "patient_id"])["pred"]
    for (m, s), g in t.groupby(["model", "sigma_hu"]):
        bleed, free = g[g["gt"] > 0], g[g["gt"] == 0]
        big = bleed[bleed["gt"] * VOXEL_ML >= 2.0]
        ref = clean.loc[[(m, p) for p in big["patient_id"]]].to_numpy(float)
        change = np.abs(big["pred"].to_numpy(float) / np.where(ref > 0, ref, np.nan) - 1)
        out.append(
            {
                "model": m,
                "sigma (HU)": s,
                "Dice (patient)": round(float(bleed["dice"].mean()), 3),
                "found": f"{int((bleed['dice'] >= FOUND_DICE).sum())} of {len(bleed)}",
                "median abs(volume / clean - 1), >= 2 ml": round(float(np.nanmedian(change)), 3) if len(big) else np.nan,
                "FP patients": f"{int((free['pred'] > 0).sum())} of {len(free)}",
            }
        )
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sigmas", nargs="+", type=float, default=[0, 5, 10, 20])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--manifest", default="../shared/data/ctich/slices.csv")
    a = ap.parse_args()
    rows = []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for item in a.runs:
            label, spec = item.split("=", 1)
            rows += run(label, spec, a.manifest, a.sigmas, a.seed, Path(tmp))
    t = pd.DataFrame(rows)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t.to_csv(out / "noise_patients.csv", index=False)
    s = summary(t)
    md = ["| " + " | ".join(s.columns) + " |", "|" + "---|" * len(s.columns)]
    md += ["| " + " | ".join(str(v) for v in row) + " |" for row in s.itertuples(index=False)]
    (out / "noise.md").write_text("\n".join(md) + "\n")
    print(s.to_string(index=False))


if __name__ == "__main__":
    main()
