#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] [MAX_REQUEUES=20] \
#        bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
#
# Time limits and preemption: on SIGTERM or SIGUSR1 every train.py task finishes the current iteration, the
# checkpoint of that iteration is saved (WORK_DIR/iter_N.pth, and WORK_DIR/preempted.json says so), and the
# tasks exit with 124. This script then gets the training continued:
#   - in a batch job (sbatch --requeue --signal=USR1@90 ... tools/slurm_train.sh ...): `scontrol requeue
#     $SLURM_JOB_ID`; Slurm runs the script again in the requeued job (SLURM_RESTART_COUNT > 0), which adds
#     --resume when WORK_DIR has a checkpoint;
#   - outside an allocation (srun creates the job itself): srun again with --resume (a new job).
# At most MAX_REQUEUES (20) times in a row. A signal sent to this script only (sbatch --signal=B:USR1@90) is passed
# on to srun, which passes it on to the tasks. Any other exit code of the training ends the script with that code.
set -euo pipefail
if [ $# -lt 4 ]; then echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [ARGS...]" >&2; exit 2; fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
TOOLS="$(cd "$(dirname "$0")" && pwd)"
REQUEUE_EXIT_CODE=124  # mixformer_mm.engine.preemption.REQUEUE_EXIT_CODE
MARKER="$WORK_DIR/preempted.json"  # mixformer_mm.engine.preemption.PREEMPTED_MARKER
MAX_REQUEUES=${MAX_REQUEUES:-20}
case $MAX_REQUEUES in ''|*[!0-9]*) echo "$0: MAX_REQUEUES must be a whole number, got '$MAX_REQUEUES'" >&2; exit 2;; esac

log() { echo "[slurm_train] $*" >&2; }
has_checkpoint() { [ -s "$WORK_DIR/last_checkpoint" ] || compgen -G "$WORK_DIR/*.pth" >/dev/null; }

child=
interrupted=0
forward() {
    interrupted=1
    if [ -n "$child" ]; then kill -s "$1" "$child" 2>/dev/null || true; fi
}
trap 'forward TERM' TERM
trap 'forward USR1' USR1

# Run srun in the background and wait for it, so that a trapped signal is forwarded at once (bash runs traps only
# between commands); after a trapped signal, wait again until srun has really exited.
train() {
    rm -f "$MARKER"
    bash "$TOOLS/slurm_launch.sh" train.py "$PARTITION" "$JOB_NAME" "$CONFIG" --work-dir="$WORK_DIR" "$@" &
    child=$!
    local status again
    while :; do
        interrupted=0
        status=0
        wait "$child" || status=$?
        [ "$interrupted" = 1 ] || break
        if kill -0 "$child" 2>/dev/null; then continue; fi
        again=0
        wait "$child" 2>/dev/null || again=$?
        if [ "$again" -ne 127 ]; then status=$again; fi  # 127: the interrupted wait had already collected it
        break
    done
    child=
    rc=$status
}

attempt=${SLURM_RESTART_COUNT:-0}
resume=()
if [ "$attempt" -gt 0 ]; then
    if has_checkpoint; then
        log "requeued job (restart $attempt): resuming from the latest checkpoint in $WORK_DIR"
        resume=(--resume)
    else
        log "requeued job (restart $attempt), but $WORK_DIR has no checkpoint yet: starting from the beginning"
    fi
fi
while :; do
    train "$@" ${resume[@]+"${resume[@]}"}
    if [ "$rc" -eq 0 ] || { [ "$rc" -ne "$REQUEUE_EXIT_CODE" ] && [ ! -f "$MARKER" ]; }; then
        exit "$rc"
    fi
    log "training stopped at a signal with a checkpoint (exit code $rc, $MARKER)"
    attempt=$((attempt + 1))
    if [ "$attempt" -gt "$MAX_REQUEUES" ]; then
        log "not requeuing: $MAX_REQUEUES requeues in a row (MAX_REQUEUES); continue with the same command and --resume"
        exit "$REQUEUE_EXIT_CODE"
    fi
    if [ -n "${SLURM_JOB_ID:-}" ]; then
        if scontrol requeue "$SLURM_JOB_ID"; then
            log "requeued job $SLURM_JOB_ID ($attempt of at most $MAX_REQUEUES); it resumes from the checkpoint"
            exit 0
        fi
        log "could not requeue job $SLURM_JOB_ID (only batch jobs can be requeued, and not with sbatch --no-requeue);" \
            "continue with the same command and --resume"
        exit "$REQUEUE_EXIT_CODE"
    fi
    log "not in a Slurm allocation: running srun again with --resume (requeue $attempt of at most $MAX_REQUEUES)"
    resume=(--resume)
done
