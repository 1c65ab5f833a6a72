#!/usr/bin/env bash
# The real-CT recipe ladder (issue 23): each rung is the rung below plus one change, screened
# on folds 0 and 1 against it (paired per patient) and, for the recipe kept, run on all five.
#
#   experiments/ctich_ladder.sh RUNG [RUNG ...]   # train + evaluate what is missing, resuming
#   experiments/ctich_ladder.sh report            # reports/ctich/v7_ladder/: every rung pooled and paired
#                                                 # (REPORT_FOLDS="0 1": v4's folds taken for comparison)
#
# Rungs (runs/ctich_ladder/<rung>/cv_lite0_unet/lite0_unet_fold<K>/):
#   lite_whole  +1, first try: lite on whole 256 px slices (batch 12, 8 x 100 steps, lr 5e-4), fold 0
#   lite        v4 -> +1: experiment=ctich_lite (ImageNet EfficientNet-Lite0 U-Net, v4's patches), folds 0 1
#   native      +3: lite at the native 512 px (128 px patches of the full-resolution slices;
#               the size rule scaled to the same physical size), folds 0 1
#   paste       +2: lite + lesion synthesis (data.lesion_paste.p=0.5), folds 0 1
#   robust      +5: lite + scale 0.7-1.4, noise up to 20 HU, sharpen (data.augment.*), folds 0 1
#   synth       +2+5 together: lite + lesion synthesis + the robustness augmentation, folds 0 1
#               (the recipe a shipped model needs; the two screened as one rung for the budget)
#   native_synth  +3 on synth: the shipped recipe at 512 px (native measured best on folds 0-1), folds 0 1
#   icr         +4 as a rule, no training: lite's folds evaluated with the contract's intracranial
#               rule (runs/ctich_ladder/lite_icr/)
#   cv5         the kept recipe (synth) on all five folds against v4's five (no rules):
#               reports/ctich/v7_cv5/ (run FOLDS="0 1 2 3 4" experiments/ctich_ladder.sh synth first)
# FOLDS="0 1 2 3 4" experiments/ctich_ladder.sh RUNG runs a rung on every fold; EXTRA="threads=1"
# adds overrides that change nothing but speed (e.g. one thread each for two runs side by side).
# v4 (experiment=ctich, ours) is the committed reports/ctich/v4_cv5/folds.
# ~20 min a fold on 2 cores (bf16); a fold resumes from its last epoch.
set -euo pipefail
PY=${PY:-python}
ROOT=${RUNS:-runs/ctich_ladder}
OUT=${OUT:-reports/ctich/v7_ladder}
overrides() {
  case "$1" in
    lite_whole) echo "data.augment.crop=0 data.batch_size=12 data.samples_per_epoch=1200 trainer.max_epochs=8 task.optimizer.lr=5e-4" ;;
    lite) echo "" ;;
    native) echo "data.input_size=512 task.contract.min_component_px=64" ;;
    paste) echo "+data.lesion_paste.p=0.5" ;;
    robust) echo "+data.augment.scale=[0.7,1.4] +data.augment.noise_hu=20 +data.augment.sharpen=0.2" ;;
    synth) echo "$(overrides paste) $(overrides robust)" ;;
    native_synth) echo "$(overrides native) $(overrides synth)" ;;
    *) echo "unknown rung $1 (lite_whole, lite, native, paste, robust, synth, native_synth, icr, cv5, report)" >&2; return 2 ;;
  esac
}
folds() { [ "$1" = lite_whole ] && echo "0" || echo "0 1"; }
source "$(dirname "$0")/keep.sh"
for rung in "$@"; do
  if [ "$rung" = icr ]; then
    for d in "$ROOT"/lite/cv_lite0_unet/lite0_unet_fold*; do
      [ -f "$ROOT/lite_icr/cv_lite0_unet/$(basename "$d")/oof_patients.csv" ] ||
        $PY -m hemato.cv evaluate "$d" --contract intracranial=true --out "$ROOT/lite_icr/cv_lite0_unet"
    done
    continue
  fi
  if [ "$rung" = cv5 ]; then
    CV5=${CV5:-reports/ctich/v7_cv5}
    for d in "$ROOT"/synth/cv_lite0_unet/lite0_unet_fold*; do OUT="$CV5" keep "$d" "synth/$(basename "$d")"; done
    $PY -m hemato.cv report "v4=reports/ctich/v4_cv5/folds" "synth=$CV5/runs/synth" --out "$CV5"
    continue
  fi
  if [ "$rung" = report ]; then
    args=()  # every rung on the folds the screens ran (REPORT_FOLDS), so every row pools the same
    # patients (synth's folds 2-4, run for the five-fold result, are in rung cv5's report)
    for k in ${REPORT_FOLDS:-0 1}; do args+=("v4=reports/ctich/v4_cv5/folds/fold$k"); done
    for r in lite_whole lite lite_icr native paste robust synth native_synth; do
      for k in ${REPORT_FOLDS:-0 1}; do
        d="$ROOT/$r/cv_lite0_unet/lite0_unet_fold$k"
        [ -f "$d/oof_patients.csv" ] || continue
        args+=("$r=$d")
        keep "$d" "$r/$(basename "$d")"
      done
    done
    $PY -m hemato.cv report "${args[@]}" --out "$OUT"
    continue
  fi
  ov=$(overrides "$rung")
  # shellcheck disable=SC2086
  FOLDS="${FOLDS:-$(folds "$rung")}" EXP=ctich_lite RUNS="$ROOT/$rung" OUT="$ROOT/$rung/report" PY="$PY" \
    experiments/ctich_cv.sh lite0_unet $ov ${EXTRA:-}
done
