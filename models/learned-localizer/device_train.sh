#!/usr/bin/env bash
# One-shot longer training run on the accelerator machine (issue #17), prepared for when a task
# is lent one. NOT run in this session (none was lent). What it needs there: PyTorch (CUDA),
# OpenCV, Pillow, numpy, onnx (present on that machine); no registry access, so the source cache
# travels with the tree:
#
#   run(command="bash models/learned-localizer/device_train.sh", timeout_s=560,
#       carry=[".cache/localizer/faces.npz"])          # 6.6 MB: face regions + landmarks + photos
#
# The crops are generated THERE from the compact cache (16 cores: ~30k crops in about two minutes)
# instead of carrying ~6 GB of crops; the validation split is regenerated with the same seeds as
# here (data.py --part val). Results come back under $OUT: run/{best,last}.pt, run/log.txt,
# run/metrics.jsonl, learned-localizer-v1.onnx, env.txt. Then, on this machine:
#   cp <files_at>/learned-localizer-v1.onnx models/learned-localizer/ && \
#     .cache/venv-localizer/bin/python models/learned-localizer/calibrate.py --run gpu
# (calibration runs here with onnxruntime on the local validation split; the device machine may
# lack onnxruntime). Budget: <= 15 device minutes per session, <= 10 per command: data 2.5 min,
# training TRAIN_MIN (default 5) minutes, export < 1 min.
set -uo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/ll-out}
DATA=/tmp/ll-data
TRAIN_MIN=${TRAIN_MIN:-5}
PY=${PYTHON:-python}
# the configuration of the better CPU attempt (see MODEL_CARD.md), wider and with bigger batches
TRAIN_ARGS=${TRAIN_ARGS:---width 1.5 --batch 48 --lr 3e-3}
mkdir -p "$OUT" "$DATA"
CACHE=../../.cache/localizer/faces.npz
[ -f "$CACHE" ] || { echo "missing $CACHE: carry it (see the header)"; exit 2; }
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; $PY -c "import torch, cv2, numpy, PIL; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cv2', cv2.__version__)"; nproc; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
t0=$(date +%s)
# smoke test on a CPU box: N_PROC=1 PER_PROC=16 VAL_N=18 DEVICE=cpu TRAIN_MIN=0.2 OUT=/tmp/x bash device_train.sh
N=${N_PROC:-$(( $(nproc) - 1 ))}
PER_PROC=${PER_PROC:-2000}
VAL_N=${VAL_N:-600}
DEVICE=${DEVICE:-cuda}
for i in $(seq 1 "$N"); do
  OMP_NUM_THREADS=1 timeout 170 $PY data.py --cache "$CACHE" --part "d$i" --seed $((100 + i)) --train "$PER_PROC" --out "$DATA" > "$OUT/data-$i.log" 2>&1 &
done
OMP_NUM_THREADS=1 timeout 170 $PY data.py --cache "$CACHE" --part val --val "$VAL_N" --out "$DATA" > "$OUT/data-val.log" 2>&1 &
wait
ls -la "$DATA" | tee -a "$OUT/env.txt"
echo "data: $(( $(date +%s) - t0 )) s"
[ -f "$DATA/val.npz" ] || { echo "no validation split"; exit 3; }
timeout $(( ${TRAIN_MIN%.*} * 60 + 120 )) $PY train.py --run gpu --device "$DEVICE" --threads 8 $TRAIN_ARGS \
  --minutes "$TRAIN_MIN" --val-every 1.5 --val-n "$VAL_N" --data "$DATA" --out "$OUT/run"
echo "train done: $(( $(date +%s) - t0 )) s"
[ -f "$OUT/run/best.pt" ] || cp "$OUT/run/last.pt" "$OUT/run/best.pt" 2>/dev/null
$PY export.py "$OUT/run/best.pt" "$OUT/learned-localizer-v1.onnx"
echo "all: $(( $(date +%s) - t0 )) s"
