#!/usr/bin/env bash
# The paper's claim on real CT at the real-CT recipe (issue 26): self-attention at the
# bottleneck (SA) and channel + spatial attention on the skips (CA, SPA) on the recipe's
# network (lite0_unet, recipe `synth` of experiments/ctich_ladder.sh), against the plain one.
#
#   experiments/ctich_paper_lite.sh full        # SA+CA+SPA, folds 0-4 (Table 1/2 at the recipe)
#   experiments/ctich_paper_lite.sh sa sa_ca    # Table 7 rows +SA, +SA+CA, folds 0 1
#   experiments/ctich_paper_lite.sh seed        # fold 0 again with seed 7, plain and full (seed spread)
#   experiments/ctich_paper_lite.sh report      # reports/ctich/v7_paper/: pooled, paired (Dice, IoU, Rvd), seeds, W&B run
#
# plain is the ladder's synth rung (runs/ctich_ladder/synth, all five folds: `FOLDS="0 1 2 3 4"
# experiments/ctich_ladder.sh synth`); same folds, split, seed (42) and budget for every variant.
# Runs: runs/ctich_paper/<variant>/cv_lite0_unet/lite0_unet_fold<K>/, resumed from their last epoch.
# FOLDS=... overrides a variant's folds; EXTRA="threads=1" as in ctich_ladder.sh. Every fold
# trains in the precision plain's fold trained in (its provenance.json): precision=auto decides
# per run by a short speed probe, which chose bf16-mixed for plain's folds 0 and 3 and fp32 for
# 1, 2 and 4 on this machine.
# ~27 min a fold on 2 cores (Intel Xeon with AMX-BF16, bf16-mixed).
set -euo pipefail
PY=${PY:-python}
ROOT=${RUNS:-runs/ctich_paper}
LADDER=${LADDER:-runs/ctich_ladder}
OUT=${OUT:-reports/ctich/v7_paper}
SEED2=7
RECIPE="+data.lesion_paste.p=0.5 +data.augment.scale=[0.7,1.4] +data.augment.noise_hu=20 +data.augment.sharpen=0.2"
flags() {
  case "$1" in
    full) echo "model.sa=true model.ca=true model.spa=true" ;;
    sa) echo "model.sa=true" ;;
    sa_ca) echo "model.sa=true model.ca=true" ;;
    *) echo "unknown variant $1 (full, sa, sa_ca, seed, report)" >&2; return 2 ;;
  esac
}
folds() { [ "$1" = full ] && echo "0 1 2 3 4" || echo "0 1"; }
precision() {  # the precision plain's fold $1 trained in (precision=auto chose per run, by a probe)
  $PY -c "import json,sys; print(json.load(open(sys.argv[1]))['precision']['precision'])" \
    "$LADDER/synth/cv_lite0_unet/lite0_unet_fold$1/provenance.json"
}
train() {  # variant folds extra-overrides...: each fold in the precision plain's fold had
  local v=$1 f=$2 k
  shift 2
  for k in $f; do
    # shellcheck disable=SC2086
    FOLDS="$k" EXP=ctich_lite RUNS="$ROOT/$v" OUT="$ROOT/$v/report" PY="$PY" \
      experiments/ctich_cv.sh lite0_unet $RECIPE trainer.precision="$(precision "$k")" "$@" ${EXTRA:-}
  done
}
source "$(dirname "$0")/keep.sh"
for v in "$@"; do
  case "$v" in
    seed)
      # shellcheck disable=SC2046
      train seed_plain 0 seed=$SEED2
      # shellcheck disable=SC2046
      train seed_full 0 seed=$SEED2 $(flags full)
      ;;
    report)
      args=("plain=$LADDER/synth/cv_lite0_unet" "full=$ROOT/full/cv_lite0_unet")  # Table 1/2: plain against full
      for r in full sa sa_ca; do
        for d in "$ROOT/$r"/cv_lite0_unet/lite0_unet_fold*; do [ -d "$d" ] && keep "$d" "$r/$(basename "$d")"; done
      done
      $PY -m hemato.cv report "${args[@]}" --out "$OUT" --wandb  # + one offline W&B report run ($OUT/wandb)
      t7=()  # Table 7 on the folds every variant has (0 and 1): plain, +SA, +SA+CA, full
      for r in plain sa sa_ca full; do
        for k in 0 1; do
          d="$ROOT/$r/cv_lite0_unet/lite0_unet_fold$k"
          [ "$r" = plain ] && d="$LADDER/synth/cv_lite0_unet/lite0_unet_fold$k"
          [ -f "$d/oof_patients.csv" ] && t7+=("$r=$d")
        done
      done
      $PY -m hemato.cv report "${t7[@]}" --out "$OUT/table7" --wandb
      if [ -f "$ROOT/seed_plain/cv_lite0_unet/lite0_unet_fold0/oof_patients.csv" ]; then
        keep "$LADDER/synth/cv_lite0_unet/lite0_unet_fold0" "seeds/plain/seed42"
        keep "$ROOT/seed_plain/cv_lite0_unet/lite0_unet_fold0" "seeds/plain/seed$SEED2"
        keep "$ROOT/full/cv_lite0_unet/lite0_unet_fold0" "seeds/full/seed42"
        keep "$ROOT/seed_full/cv_lite0_unet/lite0_unet_fold0" "seeds/full/seed$SEED2"
        $PY -m hemato.cv seeds "plain=$OUT/runs/seeds/plain" "full=$OUT/runs/seeds/full" --out "$OUT/seeds"
      fi
      ;;
    *)
      # shellcheck disable=SC2046
      train "$v" "${FOLDS:-$(folds "$v")}" $(flags "$v")
      ;;
  esac
done
