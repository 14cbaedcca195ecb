#!/usr/bin/env bash
# One-shot training run on a lent GPU machine (the `device` tool), prepared so that its few
# minutes go to training: continue from a weights file on the packed photos, budgeted in wall
# time, and leave the exported weights (with their .sha256) and the log in $OUT. Calibrate and
# evaluate them here, on the CPU, like any other candidate (weights/MODEL_CARD.md).
#
#   python research/pack_training_photos.py ../shared/data/train --mib 32      # here, once
#   device run, carry ["gpu-pack"]:  bash research/gpu_train.sh weights/candidates/chromanet-v2-s4.safetensors
#
# Two runs in one call (the second starts from the first's weights) give two OUT folders:
#   OUT=$OUT/a FREEZE=1 bash research/gpu_train.sh A.safetensors && OUT=$OUT/b bash research/gpu_train.sh $OUT/a/*.safetensors
#
# ARCH (default chromanet), MINUTES (7), DEVICE (cuda), BATCH (64), WORKERS (12), THREADS (4),
# CROP (128), LR (4e-4), ENCODER_LR (4e-5), FREEZE (0: the --freeze-fraction), WARMUP (200),
# HOLDOUT (100), PACK (the photos folder) and BF16 (1: the forward pass in bfloat16, `--bf16`;
# 0: float32) override the defaults; research/tests/test_training_tools.py runs it on the CPU in miniature.
set -euo pipefail
init=${1:?usage: gpu_train.sh WEIGHTS}
: "${OUT:?OUT must name the folder for the results}"
mkdir -p "$OUT"
precision=()
[ "${BF16:-1}" = 1 ] && precision=(--bf16)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
python3 -m colorize_cli train "${PACK:-gpu-pack/photos}" --out "$OUT/run" --arch "${ARCH:-chromanet}" --init "$init" \
  --device "${DEVICE:-cuda}" --wall-minutes "${MINUTES:-7}" --workers "${WORKERS:-12}" --threads "${THREADS:-4}" \
  --batch "${BATCH:-64}" --crop "${CROP:-128}" --min-scale 0.73 --ema 0.999 --marks 0.15 --lr "${LR:-4e-4}" \
  --encoder-lr "${ENCODER_LR:-4e-5}" --freeze-fraction "${FREEZE:-0}" --warmup "${WARMUP:-200}" --holdout "${HOLDOUT:-100}" \
  "${precision[@]}" 2>&1 | tee "$OUT/train.log"
# Only what is needed comes back (the tool returns few files): the optimizer state is too big
# and not needed (--init), and holdout.txt names photos of the pack.
mv "$OUT"/run/*.safetensors "$OUT"/run/*.safetensors.sha256 "$OUT/run/log.jsonl" "$OUT/"
rm -r "$OUT/run"
ls -l "$OUT"
