#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT as for dist_train.sh.
set -euo pipefail
if [ $# -lt 3 ]; then echo "usage: $0 CONFIG CHECKPOINT GPUS [ARGS...]" >&2; exit 2; fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
exec bash "$(dirname "$0")/torchrun_launch.sh" test.py "$GPUS" "$CONFIG" "$CHECKPOINT" "$@"
