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
for job in ${@:-base_s42 pre_s42 fp32_s42 base_s43 fp32_s43}; do
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
