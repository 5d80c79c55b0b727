#!/usr/bin/env bash
# Every GPU check in one run, printing its figures (for a lent device; see README).
#   bash bench/gpu_check.sh [DATA_DIR]
# 1. the CUDA tests of the suite (they skip, with the reason, where there is no GPU);
# 2. bench/eval_speed.py on cuda: images/s in-process and through the sandbox, and one
#    training epoch of the reference ConvNet;
# 3. the 03 examples graded with --device cuda on the synthetic set, timed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${1:-data}
nvidia-smi || { echo "no nvidia-smi: not a GPU machine"; exit 1; }
test -f "$DATA/synthetic/synthetic.json" || "$PY" grader.py data synthetic --root "$DATA"
echo "== CUDA tests"
"$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py -rs
echo "== eval speed on cuda"
"$PY" bench/eval_speed.py --device cuda --data-dir "$DATA" --repeat 5
echo "== 03 examples graded on cuda"
OUT=$(mktemp -d)
SECONDS=0
"$PY" grader.py grade --assignment 03_convnet_cifar10 examples/submissions/03_convnet_cifar10/* \
    --device cuda --data-dir "$DATA" --out "$OUT" --jobs 2 --seed 1
cat "$OUT/gradebook.csv"
echo "graded $(ls examples/submissions/03_convnet_cifar10 | wc -l) submissions on cuda in ${SECONDS} s"
