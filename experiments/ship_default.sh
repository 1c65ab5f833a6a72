#!/usr/bin/env bash
# The v4 default model (hemato/weights/ctich_ours_cv5.pt, shipped until 2026-12-01; now
# experiments/ship_lite.sh builds the default), from the 5 fold models of
# `RUNS=runs/ctich_v4 experiments/ctich_cv.sh ours`:
#   1. out-of-fold evaluation of each fold model with flip TTA (contract tta=true), written
#      beside the runs (runs/ctich_v4_tta/cv_ours), never into them;
#   2. the pooled report of that contract;
#   3. component rules (size, highest probability, mean HU) chosen by leave-one-fold-out for
#      at most 1 in 10 bleed-free patients given a bleed; the rule chosen on all folds ships;
#   4. the five fold models packed into one file (their probabilities are averaged) with
#      that contract and the cross-validated figures in its provenance.
# ~10 min on 2 cores (step 1), seconds for the rest.
set -euo pipefail
PY=${PY:-python}
RUNS=${RUNS:-runs/ctich_v4}
OUT=${OUT:-reports/ctich/v5_ship}
TTA=${TTA:-${RUNS}_tta/cv_ours}
for k in 0 1 2 3 4; do
  [ -f "$TTA/ours_fold$k/oof_patients.csv" ] ||
    $PY -m hemato.cv evaluate "$RUNS/cv_ours/ours_fold$k" --contract tta=true --out "$TTA"
done
$PY -m hemato.cv report "$TTA" --out "$OUT"
$PY -m hemato.cv calibrate "$TTA" --max-fp-rate 0.1 --out "$OUT"
$PY -m hemato.weights pack "$RUNS"/cv_ours/ours_fold{0,1,2,3,4} --output hemato/weights/ctich_ours_cv5.pt \
  --calibration "$OUT/calibration.json" --contract tta=true \
  --trained-on "PhysioNet ct-ich (60 patients, CC BY 4.0): ensemble of the 5 cross-validation fold models (recipe v4), each trained on 4/5 of the patients" \
  --note "experiments/ship_default.sh"
