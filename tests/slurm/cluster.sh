#!/usr/bin/env bash
# A real one-node SLURM cluster on localhost, with accounting (slurmdbd + MariaDB), for the tests.
#
#   tests/slurm/cluster.sh          install if needed, (re)start what is not running, wait until idle
#   tests/slurm/cluster.sh stop     stop the daemons this script started (by their pid files)
#   tests/slurm/cluster.sh status   exit 0 when the cluster answers and accounting works
#
# Idempotent and fast when the cluster is already up (~1 s). Needs root and apt (Debian 12:
# SLURM 22.05). No systemd: the daemons are started directly. The node advertises two stand-in
# GPUs (GRES on dummy device files) so that GPU requests (`sbatch --gpus=1`) are scheduled as on a
# real GPU node. Accounting is real, so `sacct` answers as on a production cluster, and the
# account `affectflow` is root's default account (the slurm plugin guesses it when the profile
# names none). Fast-test settings: KillWait=5 (a job past its time limit gets SIGKILL 5 s after
# SIGTERM). Every setting is in the heredocs below; the files are rewritten, and the daemons
# restarted, only when they change.
set -euo pipefail

CLUSTER=affectflow
ACCOUNT=affectflow
PARTITION=main
DB_PASS=affectflow-test
ETC=/etc/slurm
STATE=/var/lib/slurm
LOGDIR=/var/log/slurm
RUNDIR=/run/affectflow-slurm
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)

log() { echo "[cluster.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

alive() {  # alive PIDFILE: the process named in PIDFILE is running
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2 i
    shift 2
    for ((i = 0; i < limit * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    tail -n 5 $LOGDIR/*.log $RUNDIR/*.log 2>/dev/null >&2 || true
    die "$what did not come up within ${limit}s; see $LOGDIR/ and $RUNDIR/"
}

node_ready() {
    local state
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1)
    [[ $state =~ ^(idle|mixed|allocated)$ ]]
}

accounting_ready() {
    sacct -n -X -o JobID -S now-1minutes >/dev/null 2>&1 \
        && sacctmgr -n -P show assoc user=root account=$ACCOUNT format=account 2>/dev/null | grep -qx $ACCOUNT
}

stop_daemon() {  # stop_daemon PIDFILE
    local pidfile=$1 pid i
    alive "$pidfile" || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

stop_all() {
    stop_daemon /run/slurmd.pid
    stop_daemon /run/slurmctld.pid
    stop_daemon /run/slurmdbd.pid
    stop_daemon /run/mysqld/mysqld.pid
    stop_daemon /run/munge/munged.pid
}

case "${1:-start}" in
    stop) stop_all; exit 0 ;;
    status) node_ready && accounting_ready; exit ;;
    start) ;;
    *) die "usage: $0 [start|stop|status]" ;;
esac

[[ $(id -u) == 0 ]] || die "needs root (installs Debian packages and starts daemons); run as root or set AFFECTFLOW_SKIP_SLURM=1"
# Never take over a real SLURM installation: only a configuration this script wrote is rewritten.
if [[ -f $ETC/slurm.conf ]] && ! head -1 $ETC/slurm.conf | grep -q "Written by tests/slurm/cluster.sh"; then
    die "$ETC/slurm.conf exists and was not written by this script: not touching a real SLURM set-up (set AFFECTFLOW_SKIP_SLURM=1 to skip the SLURM tests)"
fi

# -- packages ---------------------------------------------------------------------------------------
installed() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
    done
}
mkdir -p $RUNDIR
if ! installed; then
    command -v apt-get >/dev/null || die "apt-get not found: install ${PACKAGES[*]} by hand"
    log "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The packages' scripts cannot start services here (no systemd); we start the daemons below.
    apt_install() { apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; }
    apt_install >$RUNDIR/apt.log 2>&1 || { apt-get update -q >>$RUNDIR/apt.log 2>&1 && apt_install >>$RUNDIR/apt.log 2>&1; } \
        || { tail -20 $RUNDIR/apt.log >&2; die "apt-get install failed (log: $RUNDIR/apt.log)"; }
fi

# -- configuration ----------------------------------------------------------------------------------
HOST=$(hostname -s)
# Advertise at least 16 CPUs and 64 GB (SlurmdParameters=config_overrides; nothing enforces
# either without cgroups): the test scenarios run side by side and request the profile's real
# sizes (8 GB for the plan, 16 GB for a GPU rule), while their jobs use ~200 MB and mostly wait.
CPUS=$(( $(nproc) > 16 ? $(nproc) : 16 ))
MEM_MB=$(awk '/^MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
REAL_MB=$(( MEM_MB > 65536 ? MEM_MB - 1024 : 65536 ))
mkdir -p $ETC $STATE/slurmctld $STATE/slurmd $LOGDIR $RUNDIR /run/munge /run/mysqld
chown munge:munge /run/munge
chown mysql:mysql /run/mysqld

write_if_changed() {  # write_if_changed FILE MODE < content; prints "changed" when it did
    local file=$1 mode=$2 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then rm -f "$tmp"; return 0; fi
    install -m "$mode" "$tmp" "$file"
    rm -f "$tmp"
    echo changed
}

changed=""
changed+=$(write_if_changed $ETC/slurm.conf 644 <<EOF
# Written by tests/slurm/cluster.sh: a one-node test cluster. Do not edit by hand.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
# No cgroups without systemd: track processes by parent pid, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
# Accounting as on a production cluster: sacct answers from slurmdbd; accounts are enforced.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
JobCompType=jobcomp/none
# Keep sbatch --comment (the plugin writes rule_<rule>_wildcards_<shard>) in the accounting.
AccountingStoreFlags=job_comment
# Finished jobs stay visible to squeue/scontrol for 5 minutes (the plugin's squeue mode needs it).
MinJobAge=300
# Fast tests: SIGKILL 5 s after SIGTERM when a job hits its time limit or is cancelled.
KillWait=5
OverTimeLimit=0
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
SlurmdParameters=config_overrides
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MB Gres=gpu:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
# slurmd drops GPUs without a device file; two stand-ins (char devices like /dev/null) are enough.
for i in 0 1; do
    [[ -e $RUNDIR/fake-gpu$i ]] || mknod $RUNDIR/fake-gpu$i c 1 3 2>/dev/null || touch $RUNDIR/fake-gpu$i
done
changed+=$(write_if_changed $ETC/gres.conf 644 <<EOF
# Stand-in GPUs: scheduled, allocated (CUDA_VISIBLE_DEVICES) and accounted like real ones.
NodeName=$HOST Name=gpu File=$RUNDIR/fake-gpu[0-1]
EOF
)
changed+=$(write_if_changed $ETC/slurmdbd.conf 600 <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOGDIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
)

if [[ -n $changed ]]; then
    log "configuration changed: restarting the SLURM daemons"
    stop_daemon /run/slurmd.pid
    stop_daemon /run/slurmctld.pid
    stop_daemon /run/slurmdbd.pid
fi

# -- daemons ----------------------------------------------------------------------------------------
[[ -s /etc/munge/munge.key ]] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force
    wait_for 10 munged bash -c 'munge -n | unmunge'
fi

if ! mariadb-admin --protocol=socket ping >/dev/null 2>&1; then
    [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >$RUNDIR/mariadb-install.log 2>&1
    log "starting mariadbd"
    setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
        --pid-file=/run/mysqld/mysqld.pid --skip-networking=0 --bind-address=127.0.0.1 \
        </dev/null >$RUNDIR/mariadb.log 2>&1 &
    wait_for 30 mariadbd mariadb-admin --protocol=socket ping
fi
mariadb --protocol=socket -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

if ! alive /run/slurmdbd.pid; then
    log "starting slurmdbd"
    /usr/sbin/slurmdbd
    wait_for 30 slurmdbd sacctmgr -n show cluster
fi
# Cluster, account and root's association (the slurm plugin checks the account with sacctmgr).
sacctmgr -n -P show cluster format=cluster | grep -qx $CLUSTER || sacctmgr -i add cluster $CLUSTER >/dev/null
sacctmgr -n -P show account format=account | grep -qx $ACCOUNT || sacctmgr -i add account $ACCOUNT Cluster=$CLUSTER Description=tests Organization=affectflow >/dev/null
sacctmgr -n -P show assoc user=root account=$ACCOUNT format=account | grep -qx $ACCOUNT \
    || sacctmgr -i add user root Account=$ACCOUNT DefaultAccount=$ACCOUNT Cluster=$CLUSTER >/dev/null

if ! alive /run/slurmctld.pid; then
    log "starting slurmctld"
    /usr/sbin/slurmctld
fi
if ! alive /run/slurmd.pid; then
    log "starting slurmd"
    /usr/sbin/slurmd -N "$HOST"
fi
node_registered() { [[ -n $(sinfo -h -N -o %T 2>/dev/null) && $(sinfo -h -N -o %T) != unknown* ]]; }
wait_for 30 "slurmctld" node_registered
# A node drained or down from an earlier run (old config, a killed slurmd) is put back in service.
if [[ $(sinfo -h -N -o %T) =~ ^(drain|down|inval) ]]; then
    log "resuming node $HOST ($(sinfo -h -N -o '%T: %E'))"
    scontrol update NodeName="$HOST" State=RESUME || true
fi
wait_for 60 "the node" node_ready
wait_for 60 "accounting (sacct)" accounting_ready
log "cluster $CLUSTER up: node $HOST, $CPUS CPUs, ${REAL_MB} MB, 2 GPUs (stand-ins), partition $PARTITION, account $ACCOUNT"
