#!/usr/bin/env bash
# The whole training kit in one go (what `make train-localizer` runs), from the repository root's
# .cache/venv-localizer: registry images -> crops -> training -> ONNX export -> calibration.
# Usage: models/learned-localizer/train_all.sh [minutes] [run-name] [extra train.py args...]
set -euo pipefail
cd "$(dirname "$0")"
PY=../../.cache/venv-localizer/bin/python
CACHE=../../.cache/localizer
MIN=${1:-35}
RUN=${2:-A}
shift 2 || true
mkdir -p "$CACHE/runs/$RUN"
[ -f "$CACHE/faces.npz" ] || nice -n 10 $PY sources.py
if [ ! -f "$CACHE/val.npz" ]; then
  # three processes: validation split and two halves of the training crops
  nice -n 10 $PY data.py --part val --val 600 &
  nice -n 10 $PY data.py --part 1 --seed 1 --train 2200 &
  nice -n 10 $PY data.py --part 2 --seed 2 --train 2200 &
  nice -n 10 $PY data.py --part valheld --val 240 &   # held-out recipes on validation faces (reported only)
  wait
fi
nice -n 10 $PY train.py --run "$RUN" --minutes "$MIN" "$@" 2>&1 | tee -a "$CACHE/runs/$RUN/stdout.txt"
# best.pt: the highest meanIoU + imageAUC at a periodic validation (on the first 216 validation
# crops) or at the end (all 600). On a loaded machine, --threads 1 can be several times faster.
nice -n 10 $PY export.py "$CACHE/runs/$RUN/best.pt" learned-localizer-v1.onnx
nice -n 10 $PY calibrate.py --run "$RUN"
