#!/usr/bin/env bash
# One-shot training run on a lent GPU machine (the `device` tool), prepared so that its few
# minutes go to training: continue from committed weights on the packed photos, budgeted in wall
# time, and leave the exported weights and the log in $OUT. Calibrate and evaluate them here,
# on the CPU, like any other candidate (weights/MODEL_CARD.md).
#
#   python tools/pack_training_photos.py ../shared/data/train --mib 32      # here, once
#   device run, carry ["gpu-pack"]:  bash tools/gpu_train.sh weights/candidates/chromanet-v2-s4.safetensors
#
# MINUTES (default 7), DEVICE (default cuda), BATCH, WORKERS, THREADS, HOLDOUT and PACK (the
# photos folder) override the defaults; tests/test_training.py runs it on the CPU in miniature.
set -euo pipefail
init=${1:?usage: gpu_train.sh WEIGHTS}
: "${OUT:?OUT must name the folder for the results}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
python3 -m colorize_cli train "${PACK:-gpu-pack/photos}" --out "$OUT/run" --init "$init" --device "${DEVICE:-cuda}" \
  --wall-minutes "${MINUTES:-7}" --workers "${WORKERS:-12}" --threads "${THREADS:-4}" --batch "${BATCH:-64}" \
  --crop 128 --min-scale 0.73 --ema 0.999 --marks 0.15 --lr 4e-4 --encoder-lr 4e-5 --freeze-fraction 0 --warmup 200 --holdout "${HOLDOUT:-100}" \
  2>&1 | tee "$OUT/train.log"
rm -f "$OUT/run/checkpoint.pt"  # the optimizer state is too big to come back, and not needed (--init)
mv "$OUT/run/chromanet.safetensors" "$OUT/run/chromanet.safetensors.sha256" "$OUT/run/log.jsonl" "$OUT/"
ls -l "$OUT"
