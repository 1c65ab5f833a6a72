"""The 60 ct-ich patients' intensity profile (hemato.scan_checks.intensity_profile), the
span that predict's intensity and noise flags are set from, and the noise estimate's reading
at 5 / 10 / 20 HU of added white noise on the first four patients.

    python experiments/intensity_profile.py [../shared/data/ctich] > reports/ctich/intensity_profile.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hemato.data.readers.images import read_slice
from hemato.scan_checks import intensity_profile


def main(root: Path) -> None:
    d = pd.read_csv(root / "slices.csv", dtype={"patient": str})
    rng = np.random.default_rng(0)
    rows = []
    for i, (pid, g) in enumerate(d.groupby("patient")):
        vol = np.stack([read_slice(root / f) for f in g.sort_values("slice_index")["image"]])
        row = {"patient": pid, **intensity_profile(vol)}
        if i < 4:
            hu = vol / 255 * 120 - 20
            for s in (5, 10, 20):
                noisy = np.clip((hu + rng.normal(0, s, hu.shape) + 20) / 120 * 255, 0, 255).round().astype(np.uint8)
                noisy[vol == 0] = 0
                row[f"noise_at_{s}"] = intensity_profile(noisy)["noise_hu"]
        rows.append(row)
    pd.DataFrame(rows).to_csv(sys.stdout, index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/ctich"))
