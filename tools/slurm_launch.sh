#!/usr/bin/env bash
# Shared by slurm_train.sh and slurm_test.sh: srun tools/SCRIPT with one task per GPU and the slurm launcher.
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""), PYTHON (python).
set -euo pipefail
SCRIPT=$1
PARTITION=$2
JOB_NAME=$3
shift 3
TOOLS="$(cd "$(dirname "$0")" && pwd)"
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
# shellcheck disable=SC2086
PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="${GPUS:-8}" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$TOOLS/$SCRIPT" "$@" --launcher slurm
