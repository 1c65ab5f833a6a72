#!/usr/bin/env bash
# Real CT (PhysioNet ct-ich, 60 patients): 5-fold patient-level cross-validation of the
# experiment=ctich recipe, out-of-fold evaluation through hemato's inference engine (also at
# 90/180/270 degrees), the pooled report, and (PACK=1) one weights file of the fold models.
#
#   experiments/ctich_cv.sh ours           # the shipped recipe's 5 folds (~30 min a fold, 2 cores, bf16)
#   experiments/ctich_cv.sh unet           # the baseline on the same folds
#   FOLDS=0 experiments/ctich_cv.sh fcn8s  # one fold only
#   PACK=1 experiments/ctich_cv.sh ours    # ... and build the default model (experiments/ship_default.sh)
#   EXP=ctich_lite RUNS=runs/ctich_v7 experiments/ctich_cv.sh lite0_unet   # another recipe (conf/experiment/)
#
# Each model's runs go to runs/ctich/cv_<model>/<model>_fold<K>/ and resume there if
# interrupted (ckpt_path=last). The report over every model evaluated so far is written to
# reports/ctich/ (table1_oof.md, cv_summary.json).
set -euo pipefail
PY=${PY:-python}
MODEL=${1:?usage: experiments/ctich_cv.sh MODEL [extra Hydra overrides]}
shift
FOLDS=${FOLDS:-0 1 2 3 4}
EXP=${EXP:-ctich}
RUNS=${RUNS:-runs/ctich}
OUT=${OUT:-reports/ctich}
for k in $FOLDS; do
  dir="$RUNS/cv_$MODEL/${MODEL}_fold$k"
  if [ -f "$dir/metrics.json" ]; then
    echo "fold $k of $MODEL: done ($dir)"
  elif [ -f "$dir/checkpoints/last.ckpt" ]; then
    $PY -m hemato.run experiment="$EXP" model="$MODEL" data.fold="$k" hydra.run.dir="$dir" ckpt_path=last "$@"
  else
    $PY -m hemato.run experiment="$EXP" model="$MODEL" data.fold="$k" hydra.run.dir="$dir" "$@"
  fi
  [ -f "$dir/oof_patients.csv" ] || $PY -m hemato.cv evaluate "$dir" --rotations 0 90 180 270
done
$PY -m hemato.cv report "$RUNS" --out "$OUT"
if [ "${PACK:-0}" = 1 ]; then  # the shipped default model: TTA evaluation, calibrated rules, pack
  [ "$MODEL" = ours ] || { echo "PACK=1 builds the default model from ours' folds only" >&2; exit 2; }
  PY="$PY" RUNS="$RUNS" experiments/ship_default.sh
fi
