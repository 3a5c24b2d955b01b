#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#        bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
set -euo pipefail
if [ $# -lt 4 ]; then echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [ARGS...]" >&2; exit 2; fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
exec bash "$(dirname "$0")/slurm_launch.sh" train.py "$PARTITION" "$JOB_NAME" "$CONFIG" --work-dir="$WORK_DIR" "$@"
