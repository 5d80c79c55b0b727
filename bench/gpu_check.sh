#!/usr/bin/env bash
# Every GPU check in one run, printing its figures (for a lent device; see README).
#   bash bench/gpu_check.sh [DATA_DIR]
# 1. the CUDA tests of the suite (they skip, with the reason, where there is no GPU);
# 2. bench/eval_speed.py on cuda: images/s in-process and through the sandbox, and one
#    training epoch of the reference ConvNet;
# 3. the 03 examples graded with --device cuda on the synthetic set, timed;
# 4. a class of 500 synthetic 03 submissions (the good example, each copy its own bytes)
#    graded with --device cuda --jobs 8 on one GPU, timed (issue 8: under 10 minutes).
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
echo "== 500 submissions of 03 on one GPU"
CLASS=$(mktemp -d)
"$PY" - "$CLASS" <<'MAKE'
import shutil, sys
from pathlib import Path
import nbformat
good = Path("examples/submissions/03_convnet_cifar10/good")
for i in range(500):
    folder = Path(sys.argv[1]) / f"s{i:03d}"
    folder.mkdir()
    for weights in good.glob("*.pt"):
        shutil.copy(weights, folder)
    nb = nbformat.read(good / "03_convnet_cifar10.ipynb", as_version=4)
    nb.cells[0].source = f"# student {i}\n" + nb.cells[0].source  # a code cell: a comment
    nbformat.write(nb, folder / "03_convnet_cifar10.ipynb")
MAKE
SECONDS=0
"$PY" grader.py grade --assignment 03_convnet_cifar10 "$CLASS" --device cuda --data-dir "$DATA" \
    --out "$CLASS-out" --jobs 8 --seed 1 | tail -3
echo "graded 500 submissions of 03 on one GPU in ${SECONDS} s (target: under 600 s)"
