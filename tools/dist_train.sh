#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 PORT=29500 bash tools/dist_train.sh CONFIG 8
# Without GPUs, GPUS processes train on the CPU (gloo backend).
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 CONFIG GPUS [ARGS...]" >&2; exit 2; fi
CONFIG=$1
GPUS=$2
shift 2
exec bash "$(dirname "$0")/torchrun_launch.sh" train.py "$GPUS" "$CONFIG" "$@"
