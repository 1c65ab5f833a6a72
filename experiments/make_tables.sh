#!/usr/bin/env bash
# Regenerates the paper's Tables 1-7 and Figures 2-6 (CPU-sized) on the phantom, then the report.
#   Tables 1-6: the four networks (one multirun)      -> runs/table1/multirun_*/
#   Table 7:    ablation U-Net, +SA, +SA+CA             -> runs/ablation/multirun_*/
#               (+SA+CA+SPA = ours from the table1 sweep)
#   report:     reports/cpu/report.html (+ tables/*.csv|md, figures/*.png)
# Extra Hydra overrides are passed to both sweeps, e.g. trainer=gpu experiment=... for GPUs.
set -euo pipefail
PY=${PY:-python}
RUNS=${RUNS:-runs}
OUT=${OUT:-reports/cpu}
$PY -m hemato.run -m experiment=table1 paths.runs_dir="$RUNS" "$@"
$PY -m hemato.run -m experiment=ablation paths.runs_dir="$RUNS" "$@"
latest() { ls -d "$RUNS/$1"/multirun_* | sort | tail -n 1; }
$PY -m hemato.report "$(latest table1)" "$(latest ablation)" --out "$OUT"
