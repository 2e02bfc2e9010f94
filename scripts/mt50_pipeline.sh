#!/bin/bash
# The MT50 pipeline (docs/mt50.md), every step resumable: rerun the same command after an
# interruption, and each step continues where it stopped or is skipped when done.
#
#   bash scripts/mt50_pipeline.sh record|cache|train|ship|eval|all
#
# ship copies the finished runs into vla_eqm_ros/vla_eqm_ros/checkpoints/mt50_{eqm,fm} (commit
# them: the data and the runs do not outlive a session); eval needs only those checkpoints.
#
# DATA (default ~/vla_data) holds the bags, the cache and the runs, outside the work tree.
# TRAIN_MINUTES: stop training once each run has trained this long in all (the trainer counts
# its time across resumes; default: no limit). Run it in the background, for example
#   nohup bash scripts/mt50_pipeline.sh all > ~/vla_data/mt50.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/dev_env.sh
DATA=${DATA:-$HOME/vla_data}
BAGS=$DATA/mt50/bags CACHE=$DATA/mt50/cache RUNS=$DATA/runs
CHECKPOINTS=vla_eqm_ros/vla_eqm_ros/checkpoints

record() {  # resumable: records only what is missing
  vla-eqm record --suite mt50 --episodes 50 --workers 2 --image-transport compressed \
    --out "$BAGS" --no-progress > "$DATA/mt50/record.json"
}

cache() {
  if [ -f "$CACHE/meta.json" ]; then echo "[mt50] cache exists: $CACHE"; return; fi
  vla-eqm dataset build "$BAGS" --out "$CACHE" --json \
    --contract vla_eqm_train/config/metaworld_compressed_contract.yaml > "$DATA/mt50/cache.json"
}

train() {  # EqM and FM side by side, one core each
  mkdir -p "$RUNS"
  for dec in eqm fm; do
    resume=""; [ -f "$RUNS/mt50_$dec/train_state.pt" ] && resume="--resume"
    vla-eqm train --config "vla_eqm_train/config/mt50_$dec.yaml" --dataset "$CACHE" \
      --run-dir "$RUNS/mt50_$dec" --out "$RUNS/mt50_$dec/ckpt" \
      --time-limit-min "${TRAIN_MINUTES:-0}" --no-progress $resume \
      > "$RUNS/mt50_$dec.log" 2>&1 &
  done
  wait
}

ship() {  # the trained checkpoints into the package (refuses unfinished runs)
  for dec in eqm fm; do
    python - "$RUNS/mt50_$dec/ckpt" "vla_eqm_train/config/mt50_$dec.yaml" <<'PY' || exit 1
import sys, yaml
from vla_eqm_ros.checkpoint import load_config
done = load_config(sys.argv[1]).provenance["steps"]
want = yaml.safe_load(open(sys.argv[2]))["steps"]
if done < want:
    sys.exit(f"[mt50] {sys.argv[1]} has trained {done} of {want} steps: run the train step again")
PY
  done
  for dec in eqm fm; do
    rm -rf "${CHECKPOINTS:?}/mt50_$dec" && cp -r "$RUNS/mt50_$dec/ckpt" "$CHECKPOINTS/mt50_$dec"
  done
}

evaluate() {  # bench/results/mt50.json and the README table, from the shipped checkpoints
  python bench/mt50.py --episodes 10 --workers 2 --raw "$DATA/mt50/eval"
}

case "${1:-all}" in
  record) record ;;
  cache) cache ;;
  train) train ;;
  ship) ship ;;
  eval) evaluate ;;
  all) record && cache && train && ship && evaluate ;;
  *) echo "usage: $0 record|cache|train|ship|eval|all" >&2; exit 2 ;;
esac
