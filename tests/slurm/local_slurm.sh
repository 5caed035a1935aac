#!/usr/bin/env bash
# A real single-node Slurm on this machine, for grok-tui's Slurm tests (and for trying --backend slurm).
#
#   tests/slurm/local_slurm.sh install          apt-get slurm-wlm + munge (root, Debian/Ubuntu)
#   tests/slurm/local_slurm.sh start DIR [GPUS] write DIR/slurm.conf, start munged, slurmctld, slurmd; GPUS
#                                                fake GPUs (gres backed by character devices) for the tests
#   tests/slurm/local_slurm.sh stop DIR         stop every daemon it started (by the pids it recorded)
#
# No systemd: the daemons are started directly and stopped by pid. Clients find the cluster through
# SLURM_CONF=DIR/slurm.conf. proctrack/pgid, because proctrack/linuxproc leaves a cancelled job's children
# running; task/none and no cgroups, so it runs in containers.
set -euo pipefail

die() { echo "local_slurm: $*" >&2; exit 1; }

install() {
    [ "$(id -u)" = 0 ] || die "install needs root (apt-get)"
    command -v apt-get >/dev/null || die "install needs apt-get (Debian or Ubuntu)"
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then return 0; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

start() {
    local dir=$1 gpus=${2:-0}
    [ "$(id -u)" = 0 ] || die "start needs root (the daemons run as root)"
    for b in munged slurmctld slurmd; do
        command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "$b not installed: run $0 install"
    done
    mkdir -p "$dir"/{state,spool,log,dev}
    dir=$(cd "$dir" && pwd)
    local cpus mem
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    local gres_node="" gres_types=""
    : >"$dir/gres.conf"
    if [ "$gpus" -gt 0 ]; then
        gres_types="GresTypes=gpu"
        gres_node="Gres=gpu:$gpus"
        for ((i = 0; i < gpus; i++)); do
            [ -c "$dir/dev/nvidia$i" ] || mknod "$dir/dev/nvidia$i" c 1 3
            echo "NodeName=localhost Name=gpu File=$dir/dev/nvidia$i" >>"$dir/gres.conf"
        done
    fi
    cat >"$dir/slurm.conf" <<CONF
ClusterName=grok-test
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=sched_interval=1
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=300
$gres_types
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem $gres_node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF=$dir/slurm.conf
    # munge: its own key and socket directories, as the package would make them
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge && dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
        chown munge:munge /etc/munge/munge.key 2>/dev/null || true
        chmod 400 /etc/munge/munge.key
        runuser -u munge -- /usr/sbin/munged
        for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
        pgrep -u munge -x munged >"$dir/munged.pid" || true
    fi
    /usr/sbin/slurmctld -c -f "$dir/slurm.conf"
    /usr/sbin/slurmd -N localhost -f "$dir/slurm.conf"
    for _ in $(seq 300); do
        if scontrol ping 2>/dev/null | grep -q "is UP" &&
            sinfo -h -n localhost -o %t 2>/dev/null | grep -qx "idle"; then
            echo "local_slurm: up: export SLURM_CONF=$dir/slurm.conf"
            return 0
        fi
        sleep 0.1
    done
    die "the node did not become idle in 30 s; see $dir/log/"
}

stop() {
    local dir=$1 f pid
    export SLURM_CONF=$dir/slurm.conf
    # Jobs first, so that no slurmstepd outlives the cluster (they are no daemon's children once it goes).
    if [ -f "$dir/slurmctld.pid" ] && scontrol ping 2>/dev/null | grep -q "is UP"; then
        scancel --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 150); do [ -z "$(squeue -h -t all -o %T 2>/dev/null | grep -v -x -e COMPLETED -e CANCELLED -e FAILED -e TIMEOUT)" ] && break; sleep 0.1; done
    fi
    for f in slurmd slurmctld munged; do
        [ -f "$dir/$f.pid" ] || continue
        pid=$(cat "$dir/$f.pid")
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for f in slurmd slurmctld munged; do
        [ -f "$dir/$f.pid" ] || continue
        pid=$(cat "$dir/$f.pid")
        for _ in $(seq 100); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/$f.pid"
    done
}

case "${1:-}" in
    install) install ;;
    start) [ $# -ge 2 ] || die "usage: $0 start DIR [GPUS]"; start "$2" "${3:-0}" ;;
    stop) [ $# -ge 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
    *) die "usage: $0 install | start DIR [GPUS] | stop DIR" ;;
esac
