#!/usr/bin/env bash
# End-to-end time and peak memory of `python -m hemato.predict` with no --checkpoint (the
# shipped model) on a 32-slice 512 px scan: ct-ich patient 053's first 32 slices written
# back to HU as a NIfTI (0.45 x 0.45 x 5 mm). Run with nothing else on the machine.
#   PY=.venv/bin/python experiments/time_predict.sh [RUNS=5]
set -euo pipefail
PY=${PY:-python}
N=${RUNS:-5}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
$PY - "$TMP/scan32.nii.gz" <<'EOF'
import sys
import numpy as np, nibabel as nib
from pathlib import Path
from hemato.data.readers.images import read_slice
root = Path("../shared/data/ctich")
files = sorted((root / "images" / "053").glob("*.png"), key=lambda p: int(p.stem))[:32]
png = np.stack([read_slice(f) for f in files]).astype(np.float32)
hu = png / 255 * 120 - 20
hu[png == 0], hu[png == 255] = -1000, 700   # window floor: air; window top: bone
nib.save(nib.Nifti1Image(np.transpose(hu, (2, 1, 0)).astype(np.int16), np.diag([0.45, 0.45, 5.0, 1.0])), sys.argv[1])
EOF
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /CPU: /'
echo "cores: $(nproc)"
for i in $(seq "$N"); do
  rm -rf "$TMP/out"
  /usr/bin/time -f "%e s wall, %M KB max RSS" $PY -m hemato.predict --input "$TMP/scan32.nii.gz" --output "$TMP/out" 2>&1 >/dev/null |
    grep "wall"
done
