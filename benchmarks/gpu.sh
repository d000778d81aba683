#!/usr/bin/env bash
# One prepared script for a lent GPU: fits 10 minutes, results under reports/benchmarks/.
#   run (device tool):  command "bash benchmarks/gpu.sh", carry ["data/faces"], timeout_s 600
# Steps (each under its own timeout, all before a common deadline of GPU_BUDGET_S, default 560 s):
#   1. benchmarks/models.py --device cuda: models_cuda.md/.csv for every row          (~150 s)
#   2. ~25-30 s of bf16 training per paper-profile method (one run each; chained runs after their
#      parents, in one runs root): images/s and peak memory -> gpu_train/<run>/result.json,
#      summarised in reports/benchmarks/gpu_train.md; the paper-smoke table's GPU estimates
#      (benchmarks/paper_smoke.py, est_gpu) read models_cuda.csv                         (~7 min)
#   3. what is left: sparnet-x8 at paper settings (fp32, batch 64), curve in paper_run/  (rest)
# Needs data/faces (carry it) for the 128-px runs; SPARNetHD's 512-px faces come from the mirror
# (../shared/datasets/celebamask_hq_mini) when the machine has it, else its row says why.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD"
PY="${PY:-python3}"
DEST="${OUT:-reports/benchmarks}"   # $OUT (device tool) comes back; copy it to reports/benchmarks/
BUDGET="${GPU_BUDGET_S:-560}"
T0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
mkdir -p "$DEST"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$DEST/gpu_info.csv" 2>&1 || true

# 1. models_cuda
timeout 200 "$PY" benchmarks/models.py --device cuda --gpu-budget-s 150 --out "$DEST" > "$DEST/models_cuda.log" 2>&1 \
  || echo "models.py: exit $?" >> "$DEST/models_cuda.log"

# 2. bf16 training per paper method (parents first)
RUNS="srcnn-x8 vdsr-x8 edsr-x8 srresnet-x8 srgan-x8 sparnet-x8 sparnet_light-x8 parsingnet-x8 fishfsrnet-x8
      wnet-x8 aminet-x8 amigan-x8 pgnet-x8 pgnet_gan-x8 sparnethd-x8"
for run in $RUNS; do
  l=$(left); [ "$l" -lt 60 ] && { echo "$run: skipped (budget)" >> "$DEST/gpu_train.log"; continue; }
  timeout 75 "$PY" benchmarks/paper_profile_run.py --profile paper --run "$run" --time-budget-s 25 --amp bf16 \
    --no-test --workers 8 --max-val-images 8 --runs-root "$DEST/gpu_train/runs" --out "$DEST/gpu_train/$run" \
    > "$DEST/gpu_train/$run.log" 2>&1 || echo "$run: exit $?" >> "$DEST/gpu_train.log"
done 2>/dev/null
mkdir -p "$DEST/gpu_train"
"$PY" - "$DEST" <<'PYEOF'
import json, sys
from pathlib import Path
d = Path(sys.argv[1]) / "gpu_train"
rows = ["| run | iterations | batch | images/s | peak memory (MiB) | amp | device |", "|---|---|---|---|---|---|---|"]
for p in sorted(d.glob("*/result.json")):
    r = json.loads(p.read_text())
    rows.append(f"| {r['run']} | {r['iterations']} | {r['batch_size']} | {r['images_per_s']} | {r.get('peak_mem_MiB')} "
                f"| {r.get('amp')} | {r['device']} |")
(d.parent / "gpu_train.md").write_text("# ~25 s of bf16 training per paper method (benchmarks/gpu.sh)\n\n"
                                        + "\n".join(rows) + "\n")
PYEOF

# 3. the rest on SPARNet x8 at paper settings, with its curve
l=$(left)
if [ "$l" -gt 60 ]; then
  timeout $(( l + 30 )) "$PY" benchmarks/paper_profile_run.py --profile paper --run sparnet-x8 \
    --time-budget-s $(( l - 40 )) --workers 8 --out "$DEST/paper_run" > "$DEST/paper_run.log" 2>&1 \
    || echo "paper_run: exit $?" >> "$DEST/paper_run.log"
fi
echo "gpu.sh done in $(( $(date +%s) - T0 )) s; results in $DEST"
