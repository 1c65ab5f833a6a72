#!/usr/bin/env bash
# The shipped default model from the issue-23 recipe (experiment=ctich_lite + lesion synthesis
# + robustness augmentation: the ladder's `synth` rung), one model trained on all 60 patients:
#   1. component rules (size, highest probability, mean HU) chosen by leave-one-fold-out on
#      the rung's out-of-fold runs (experiments/ctich_ladder.sh synth), <= 1 in 10 bleed-free
#      patients given a bleed; the rule chosen on all its folds ships;
#   2. the final model: the same recipe on every patient but the validation ones
#      (data.test_fraction=0, no folds), resumable;
#   3. packed with those rules and the cross-validated figures (hemato/weights/ctich_lite0.pt).
#
#   PY=.venv/bin/python experiments/ship_lite.sh      # ~25 min on 2 cores (step 2), seconds for the rest
set -euo pipefail
PY=${PY:-python}
ROOT=${RUNS:-runs/ctich_ladder}
RUNG=${RUNG:-synth}
OUT=${OUT:-reports/ctich/v7_ship}
FINAL=${FINAL:-$ROOT/${RUNG}_final}
OVERRIDES=(+data.lesion_paste.p=0.5 "+data.augment.scale=[0.7,1.4]" +data.augment.noise_hu=20 +data.augment.sharpen=0.2)
$PY -m hemato.cv calibrate "$ROOT/$RUNG/cv_lite0_unet" --max-fp-rate 0.1 --out "$OUT"
if [ ! -f "$FINAL/metrics.json" ]; then
  resume=()
  [ -f "$FINAL/checkpoints/last.ckpt" ] && resume=(ckpt_path=last)
  $PY -m hemato.run experiment=ctich_lite model=lite0_unet data.folds=null data.fold=null data.test_fraction=0 \
    "${OVERRIDES[@]}" hydra.run.dir="$FINAL" "${resume[@]}"
fi
folds=$(ls -d "$ROOT/$RUNG"/cv_lite0_unet/lite0_unet_fold* | xargs -n1 basename | sed 's/lite0_unet_fold//' | paste -sd, -)
$PY -m hemato.weights pack "$FINAL" --output hemato/weights/ctich_lite0.pt \
  --calibration "$OUT/calibration.json" \
  --trained-on "PhysioNet ct-ich (60 patients, CC BY 4.0): one EfficientNet-Lite0 U-Net (ImageNet encoder) trained on all of them but the validation patients (recipe v7: 2.5D, lesion synthesis, scale/noise/sharpening augmentation); rules and figures from the out-of-fold runs of folds $folds" \
  --note "experiments/ship_lite.sh"
