#!/usr/bin/env bash
# Start a one-node Slurm on this machine by hand (no systemd): munged as the munge user, with
# --accounting MariaDB and slurmdbd (so `sacct` works), then slurmctld, then slurmd; then wait
# until the node is idle. Config, state, logs and pid files go under $VIDMP3_SLURM_DIR
# (default /tmp/vidmp3-slurm); clients find the cluster through SLURM_CONF=$VIDMP3_SLURM_DIR/slurm.conf.
# The node offers this machine's CPUs and memory and two fake GPUs (gres gpu:fake) for scheduling
# tests. Idempotent: a cluster this script started and that still runs is left as it is.
# Root only (slurmd runs as root; the daemons switch to their users). Stop it with stop.sh.
set -euo pipefail
source "$(dirname "$0")/settings.sh"

accounting=false
case ${1:-} in
    --accounting) accounting=true ;;
    "") ;;
    *) echo "usage: $0 [--accounting]" >&2; exit 2 ;;
esac
if (( EUID != 0 )); then
    echo "slurm start: needs root" >&2
    exit 1
fi
started=$SECONDS
node=$(hostname -s)

# wait_for WHAT SECONDS LOG COMMAND...: poll COMMAND until it succeeds; on timeout show LOG's tail.
wait_for() {
    local what=$1 seconds=$2 log=$3 tries
    shift 3
    for (( tries = 0; tries < seconds * 2; tries++ )); do
        if "$@" > /dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    echo "slurm start: $what not ready after ${seconds}s; last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    exit 1
}

node_state() {
    sinfo --noheader --nodes="$node" --format=%t
}
export -f node_state
export node

if live_pid slurmctld > /dev/null && live_pid slurmd > /dev/null; then
    running_accounting=false
    if grep -q "^AccountingStorageType=accounting_storage/slurmdbd" "$SLURM_CONF"; then
        running_accounting=true
    fi
    if [[ $running_accounting != "$accounting" ]]; then
        echo "slurm start: the running cluster has accounting: $running_accounting, not $accounting; run stop.sh first" >&2
        exit 1
    fi
    wait_for "node $node" 60 "$LOG_DIR/slurmd.log" bash -c '[[ $(node_state) =~ ^(idle|mix|alloc)$ ]]'
    echo "slurm start: already running ($SLURM_DIR); export SLURM_CONF=$SLURM_CONF"
    exit 0
fi
for daemon in slurmd slurmctld; do
    if pid=$(live_pid "$daemon"); then
        echo "slurm start: $daemon ($pid) runs without its partner; run stop.sh first" >&2
        exit 1
    fi
done

install -d -m 755 "$SLURM_DIR" "$SLURM_DIR/spool" "$SLURM_DIR/dev"
install -d -m 1777 "$RUN_DIR" "$LOG_DIR"
install -d -m 755 -o slurm -g slurm "$SLURM_DIR/state"

# --- munge: the shared key authenticates every Slurm message.
install -d -m 755 -o munge -g munge /run/munge
install -d -m 700 -o munge -g munge "$MUNGE_DIR"
if [[ ! -s /etc/munge/munge.key ]]; then
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
fi
if ! { munge -n < /dev/null | unmunge; } > /dev/null 2>&1; then
    # --force: a socket left by a killed munged would otherwise stop it.
    runuser -u munge -- munged --force --pid-file="$MUNGE_DIR/munged.pid" \
        --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed"
    wait_for munged 20 "$MUNGE_DIR/munged.log" bash -c "munge -n < /dev/null | unmunge"
    cp "$MUNGE_DIR/munged.pid" "$RUN_DIR/munged.pid"
fi

# --- slurm.conf (and gres.conf) for this one node.
# CPUs, sockets, cores and memory exactly as slurmd detects them (more would make the node invalid).
hardware=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //')
for index in 0 1; do
    # A GPU for scheduling only: gres.conf wants a character device as its File=.
    [[ -c $SLURM_DIR/dev/gpu$index ]] || mknod "$SLURM_DIR/dev/gpu$index" c 1 3
done
if $accounting; then
    # AccountingStorageTRES: allocated GPUs show in each job's TRES (scontrol show job, sacct AllocTRES).
    accounting_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux"
else
    accounting_lines="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
cat > "$SLURM_CONF" <<CONF
# One-node test cluster written by scripts/slurm/start.sh.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
# slurmd fetches this config from slurmctld and caches it in /run/slurm/conf, where commands run
# inside jobs find it: Snakemake's job step drops SLURM_CONF (every SLURM_* variable) before srun.
SlurmctldParameters=enable_configless
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that names no memory is given the whole node and runs alone.
DefMemPerCPU=1000
# Finished jobs stay visible to squeue for 300 s: Snakemake's squeue status path needs >= 120 s.
MinJobAge=300
ReturnToService=2
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
$accounting_lines
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 $hardware Gres=gpu:fake:2 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$SLURM_DIR/gres.conf" <<CONF
NodeName=$node Name=gpu Type=fake File=$SLURM_DIR/dev/gpu[0-1]
CONF

# --- accounting: MariaDB (own data folder, TCP on 127.0.0.1 only) and slurmdbd.
if $accounting; then
    if ! live_pid mariadbd > /dev/null; then
        if [[ ! -d $DB_DIR/mysql ]]; then
            mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" \
                --auth-root-authentication-method=socket --skip-test-db > "$LOG_DIR/mariadb-install.log" 2>&1
        fi
        setsid mariadbd --no-defaults --user=mysql --datadir="$DB_DIR" --socket="$DB_DIR/mysqld.sock" \
            --pid-file="$RUN_DIR/mariadbd.pid" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
            --log-error="$LOG_DIR/mariadb.log" < /dev/null > /dev/null 2>&1 &
        wait_for MariaDB 60 "$LOG_DIR/mariadb.log" mariadb-admin --no-defaults --socket="$DB_DIR/mysqld.sock" ping
    fi
    password=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    mariadb --no-defaults --socket="$DB_DIR/mysqld.sock" <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
    # slurmdbd reads slurmdbd.conf beside $SLURM_CONF; it must be private to SlurmUser.
    install -m 600 -o slurm -g slurm /dev/null "$SLURM_DIR/slurmdbd.conf"
    cat > "$SLURM_DIR/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$password
StorageLoc=slurm_acct_db
PidFile=$RUN_DIR/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
CONF
    if pid=$(live_pid slurmdbd); then
        kill "$pid"  # restart it with the new password
        wait_for "slurmdbd $pid to stop" 20 "$LOG_DIR/slurmdbd.log" bash -c "! kill -0 $pid"
    fi
    slurmdbd
    wait_for slurmdbd 60 "$LOG_DIR/slurmdbd.log" sacctmgr --noheader list cluster
    if [[ -z $(sacctmgr --noheader --parsable2 list cluster "$CLUSTER_NAME" format=cluster) ]]; then
        sacctmgr --immediate add cluster "$CLUSTER_NAME" > /dev/null
    fi
fi

# --- the controller, then the node daemon.
slurmctld
wait_for slurmctld 60 "$LOG_DIR/slurmctld.log" bash -c "scontrol ping | grep -q UP"
slurmd --conf-server 127.0.0.1
wait_for "slurmd on $node" 60 "$LOG_DIR/slurmd.log" bash -c '[[ -n $(node_state) && $(node_state) != unk* ]]'
if [[ $(node_state) == down* || $(node_state) == drain* ]]; then
    scontrol update NodeName="$node" State=RESUME
fi
wait_for "node $node to be idle" 60 "$LOG_DIR/slurmd.log" bash -c '[[ $(node_state) == idle ]]'
echo "slurm start: node $node idle after $(( SECONDS - started ))s (accounting: $accounting)"
echo "export SLURM_CONF=$SLURM_CONF"
