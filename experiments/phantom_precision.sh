#!/usr/bin/env bash
# bf16 against fp32 training on the phantom default run (docs/performance.md, "bf16 vs fp32
# training, phantom"): `python -m hemato.run model=ours` with one split (data.split_seed=42) and
# training seeds 42-45 in each precision, each evaluated out of fold through the engine, then
# `hemato.cv seeds` sets the precision difference against the seed-to-seed spread.
# bf16 needs a CPU with native bf16 (AVX512-BF16 / AMX); elsewhere the config check refuses it.
#   experiments/phantom_precision.sh              # all 8 runs (~40 min on 2 cores), then the report
#   SEEDS="42 43" experiments/phantom_precision.sh
#   experiments/phantom_precision.sh report       # only the report, from the runs there are
# Runs resume (ckpt_path=last) and are skipped when done. Result files (no weights, no
# predictions) and the report go to reports/phantom_precision/.
set -euo pipefail
PY=${PY:-python}
RUNS=${RUNS:-runs/phantom_precision}
OUT=${OUT:-reports/phantom_precision}
SEEDS=${SEEDS:-42 43 44 45}
one() {  # precision label, trainer.precision, seed
  local dir="$RUNS/$1/s$3"
  if [ ! -f "$dir/metrics.json" ]; then
    local resume=()
    [ -f "$dir/checkpoints/last.ckpt" ] && resume=(ckpt_path=last)
    echo "=== $1 seed $3 $(date -u +%H:%M:%S)"
    $PY -m hemato.run model=ours seed="$3" data.split_seed=42 trainer.precision="$2" hydra.run.dir="$dir" \
      evaluation.save_predictions=false "${resume[@]}"
  fi
  [ -f "$dir/oof_patients.csv" ] || $PY -m hemato.cv evaluate "$dir"
}
report() {
  local labels=()
  for p in bf16 fp32; do
    for d in "$RUNS/$p"/s*; do
      [ -f "$d/oof_patients.csv" ] || continue
      mkdir -p "$OUT/runs/$p/$(basename "$d")"
      for f in config.yaml provenance.json metrics.json split.json oof_contract.json oof_patients.csv oof_slices.csv; do
        [ -f "$d/$f" ] && cp "$d/$f" "$OUT/runs/$p/$(basename "$d")/"
      done
    done
    [ -d "$OUT/runs/$p" ] && labels+=("$p=$OUT/runs/$p")
  done
  $PY -m hemato.cv seeds "${labels[@]}" --out "$OUT"
}
if [ "${1:-}" != report ]; then
  for s in $SEEDS; do
    one bf16 bf16-mixed "$s"
    one fp32 32-true "$s"
  done
fi
report
echo "=== done $(date -u +%H:%M:%S)"
