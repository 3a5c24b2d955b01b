#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh: run tools/SCRIPT on NPROC local processes (and NNODES nodes) with
# torchrun and the pytorch launcher. Without GPUs the processes run on the CPU (gloo backend).
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500), PYTHON (python).
set -euo pipefail
SCRIPT=$1
NPROC=$2
shift 2
TOOLS="$(cd "$(dirname "$0")" && pwd)"
PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="${PORT:-29500}" \
    "$TOOLS/$SCRIPT" "$@" --launcher pytorch
