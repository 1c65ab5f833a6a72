# Sourced by the experiment scripts: keep RUN NAME copies a finished, evaluated run's result
# files (no weights, no predictions) into $OUT/runs/NAME, so a report can be rebuilt from a
# clean checkout.
keep() {
  [ -f "$1/oof_patients.csv" ] || { echo "skipped $2: $1 not evaluated" >&2; return 0; }
  mkdir -p "$OUT/runs/$2"
  for f in config.yaml provenance.json metrics.json split.json oof_contract.json oof_patients.csv oof_slices.csv oof_components.csv; do
    [ -f "$1/$f" ] && cp "$1/$f" "$OUT/runs/$2/"
  done
  [ -f "$1/csv/metrics.csv" ] && cp "$1/csv/metrics.csv" "$OUT/runs/$2/train_curve.csv"
  return 0
}
