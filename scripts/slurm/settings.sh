# Shared settings of the one-node test Slurm (sourced by install.sh, start.sh and stop.sh).
# Everything the cluster writes lives in one folder; nothing under /etc/slurm is touched:
# the daemons and every client (sbatch, squeue, sacct, Snakemake's plugin) read $SLURM_CONF.
SLURM_DIR=${VIDMP3_SLURM_DIR:-/tmp/vidmp3-slurm}
export SLURM_CONF=$SLURM_DIR/slurm.conf
CLUSTER_NAME=vidmp3
DB_PORT=${VIDMP3_SLURM_DB_PORT:-13306}
RUN_DIR=$SLURM_DIR/run  # pid files of the daemons start.sh started (and only those)
LOG_DIR=$SLURM_DIR/log
MUNGE_DIR=$SLURM_DIR/munge
DB_DIR=$SLURM_DIR/mysql
# Daemons in start order; stop.sh stops them in reverse.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

# The pid in $RUN_DIR/NAME.pid if that process is alive and still runs the program NAME
# (a stale file, or a pid reused by another program, gives nothing and a non-zero status).
live_pid() {
    local name=$1 file=$RUN_DIR/$1.pid pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc '0-9' < "$file")
    [[ -n $pid && -r /proc/$pid/comm && $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
    echo "$pid"
}
