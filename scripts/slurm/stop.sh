#!/usr/bin/env bash
# Stop the daemons that start.sh started, by the pids it recorded, newest first; other processes
# (a munged or MariaDB that was already running, say) are left alone. With --purge also remove
# $VIDMP3_SLURM_DIR (config, state, accounting database, logs). Idempotent.
set -euo pipefail
source "$(dirname "$0")/settings.sh"

purge=false
case ${1:-} in
    --purge) purge=true ;;
    "") ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

for (( index = ${#DAEMONS[@]} - 1; index >= 0; index-- )); do
    name=${DAEMONS[index]}
    pid=$(live_pid "$name") || continue
    kill "$pid"
    for (( tries = 0; tries < 60; tries++ )); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2> /dev/null; then
        echo "slurm stop: $name ($pid) ignored SIGTERM for 30 s; sending SIGKILL" >&2
        kill -KILL "$pid"
    fi
    rm -f "$RUN_DIR/$name.pid"
    echo "slurm stop: stopped $name ($pid)"
done
if $purge; then
    # slurmd's pointer to the config it cached under $SLURM_DIR
    if [[ $(readlink /run/slurm/conf) == "$SLURM_DIR"/* ]]; then
        rm -f /run/slurm/conf
    fi
    rm -rf "$SLURM_DIR"
    echo "slurm stop: removed $SLURM_DIR"
fi
