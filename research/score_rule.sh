#!/bin/bash
# Score a trained network by the model card's standing rule, from the repository root:
# choose its decoding on runs/choose.txt, then one `colorize eval` per row beside v1
# (held-out photos at 256 and 128, photos it trained on at 256). The lists come from
# `python research/rule_lists.py ../shared/data`; logs and the decoded weights go to runs/NAME-*.
#   bash research/score_rule.sh runs/lite2o/chromanet-lite2.safetensors lite2o
set -euo pipefail
W=$1
N=$2
V1=weights/chromanet-v1.safetensors
colorize calibrate "$W" runs/choose.txt --min-ratio 0.70 --min-vivid-ratio 0.68 --out "runs/$N-rule.safetensors" > "runs/$N-calibrate.log" 2>&1
colorize eval runs/check.txt --weights $V1 --weights "runs/$N-rule.safetensors" > "runs/$N-check256.log" 2>&1
colorize eval runs/check.txt --render-size 128 --weights $V1 --weights "runs/$N-rule.safetensors" > "runs/$N-check128.log" 2>&1
colorize eval runs/train150.txt --weights $V1 --weights "runs/$N-rule.safetensors" > "runs/$N-train150.log" 2>&1
grep -A6 '"chosen"' "runs/$N-calibrate.log"
for row in check256 check128 train150; do echo "== $row"; cat "runs/$N-$row.log"; done
