#!/usr/bin/env bash
# ct-ich fold 0 studies on the current code (reports/ctich/README.md, "Phantom pretraining" and
# docs/performance.md, "bf16 vs fp32 training on real CT"): the experiment=ctich recipe of ours,
# out of fold through the engine. Each run resumes (ckpt_path=last) and is skipped when done.
#   base_s42   bf16 (precision=auto here), seed 42: the baseline of both studies
#   pre_s42    the same, started from the phantom pretraining run (experiment=ctich_pretrain)
#   fp32_s42   trainer.precision=32-true, seed 42
#   base_s43 / fp32_s43   the same pair, seed 43
#   experiments/ctich_fold0_study.sh                 # all, in that order (~2 h, 2 cores)
#   experiments/ctich_fold0_study.sh pre_s42         # one
#   experiments/ctich_fold0_study.sh report          # results -> reports/ctich/v6_fold0/ (with the
#       ablation runs of `FOLDS=0 RUNS=runs/ctich_v4 experiments/ctich_cv.sh ours_sa` and ours_sa_ca)
set -euo pipefail
PY=${PY:-python}
RUNS=${RUNS:-runs/ctich_fold0}
PRE="$RUNS/pretrain_phantom"
fold_run() {  # name, extra overrides...
  local name=$1 dir="$RUNS/$1/ours_fold0"; shift
  if [ ! -f "$dir/metrics.json" ]; then
    local resume=()
    [ -f "$dir/checkpoints/last.ckpt" ] && resume=(ckpt_path=last)
    $PY -m hemato.run experiment=ctich model=ours data.fold=0 hydra.run.dir="$dir" "${resume[@]}" "$@"
  fi
  [ -f "$dir/oof_patients.csv" ] || $PY -m hemato.cv evaluate "$dir"   # 0 degrees: what the studies compare
}
OUT=${OUT:-reports/ctich/v6_fold0}
source "$(dirname "$0")/keep.sh"  # keep RUN NAME: its result files into $OUT/runs/NAME
report() {
  if [ -f "$PRE/metrics.json" ]; then  # the pretraining run itself (phantom test figures, provenance)
    mkdir -p "$OUT/runs/pretrain_phantom" && cp "$PRE"/{config.yaml,provenance.json,metrics.json} "$OUT/runs/pretrain_phantom/"
  fi
  for r in base_s42 pre_s42 fp32_s42 base_s43 fp32_s43; do keep "$RUNS/$r/ours_fold0" "$r"; done
  keep runs/ctich_v4/cv_ours_sa/ours_sa_fold0 ours_sa
  keep runs/ctich_v4/cv_ours_sa_ca/ours_sa_ca_fold0 ours_sa_ca
  local R="$OUT/runs"
  # Table 7 on real CT: plain (v4_cv5, last release) -> +SA -> +SA+CA -> full (base_s42), all current code but plain
  $PY -m hemato.cv report "plain=reports/ctich/v4_cv5/folds_ours_plain/fold0" "SA=$R/ours_sa" "SA+CA=$R/ours_sa_ca" \
    "SA+CA+SPA (ours)=$R/base_s42" --out "$OUT/ablation"
  [ -d "$R/pre_s42" ] && $PY -m hemato.cv report "phantom-pretrained=$R/pre_s42" "from scratch=$R/base_s42" --out "$OUT/pretraining"
  local P=()
  for r in base_s42 fp32_s42 base_s43 fp32_s43; do
    [ -d "$R/$r" ] && P+=("$(case $r in base_*) echo bf16;; *) echo fp32;; esac) seed ${r#*_s}=$R/$r")
  done
  $PY -m hemato.cv report "${P[@]}" --out "$OUT/precision"
  # the two precisions over both seeds: the difference against the seed-to-seed spread
  if [ -d "$R/base_s42" ] && [ -d "$R/base_s43" ] && [ -d "$R/fp32_s42" ] && [ -d "$R/fp32_s43" ]; then
    $PY -m hemato.cv seeds "bf16=$R/base_s42" "bf16=$R/base_s43" "fp32=$R/fp32_s42" "fp32=$R/fp32_s43" --out "$OUT/precision"
  fi
}
for job in ${@:-base_s42 pre_s42 fp32_s42 base_s43 fp32_s43}; do
  if [ "$job" = report ]; then report; continue; fi
  echo "=== $job $(date -u +%H:%M:%S)"
  case $job in
    base_s42) fold_run base_s42 seed=42 ;;
    pre_s42)
      if [ ! -f "$PRE/metrics.json" ]; then
        $PY -m hemato.run experiment=ctich_pretrain model=ours seed=42 hydra.run.dir="$PRE"
      fi
      fold_run pre_s42 seed=42 init_from="$PRE/checkpoints/last.ckpt" ;;
    fp32_s42) fold_run fp32_s42 seed=42 trainer.precision=32-true ;;
    base_s43) fold_run base_s43 seed=43 ;;
    fp32_s43) fold_run fp32_s43 seed=43 trainer.precision=32-true ;;
    *) echo "unknown job $job" >&2; exit 2 ;;
  esac
done
echo "=== done $(date -u +%H:%M:%S)"
