"""bf16 against fp32 inference of one trained model on its out-of-fold patients (issue 13):
mask Dice between the two precisions and relative volume difference, per patient.

    python experiments/bf16_agreement.py runs/ctich_v4/cv_ours/ours_fold0

Needs a CPU with native bf16 (AVX512-BF16 or AMX); prints one line per patient and a summary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from hemato.engine import segment
from hemato.evaluation.oof import load_records
from hemato.weights.load import load_model


def main(run: str) -> None:
    run_dir = Path(run)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    m32, m16 = load_model(ckpt, precision="32"), load_model(ckpt, precision="bf16")
    test = json.loads((run_dir / "split.json").read_text())["split"]["test"]
    dices, rels = [], []
    for rec in load_records(run_dir, test):
        _, a = segment(m32.forward, rec.image, m32.contract)
        _, b = segment(m16.forward, rec.image, m16.contract)
        n = int(a.sum() + b.sum())
        d = 2 * int((a & b).sum()) / n if n else 1.0
        rel = abs(int(b.sum()) - int(a.sum())) / max(int(a.sum()), 1)
        dices.append(d)
        rels.append(rel)
        print(
            f"{rec.patient_id}: fp32 {int(a.sum())} vox, bf16 {int(b.sum())} vox, mask Dice {d:.4f}, |dV|/V {rel:.4f}"
        )
    print(
        f"{len(dices)} patients: mask Dice bf16 vs fp32 mean {np.mean(dices):.4f} (min {np.min(dices):.4f}); "
        f"relative volume difference mean {np.mean(rels):.4f} (max {np.max(rels):.4f})"
    )


if __name__ == "__main__":
    main(sys.argv[1])
