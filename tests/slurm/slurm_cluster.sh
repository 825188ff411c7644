#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for tests (root only, Debian 12 packages).
#
#   tests/slurm/slurm_cluster.sh start RUNDIR   # install if needed, write RUNDIR/slurm.conf, start
#   tests/slurm/slurm_cluster.sh stop RUNDIR    # stop the daemons this script started (by PID)
#
# Daemons run as plain processes (no systemd): munged (only if none is running), slurmctld -i,
# slurmd. Everything they write (state, spool, logs, PID files) is under RUNDIR; the ports are
# picked free. /etc/slurm/slurm.conf becomes a link to RUNDIR/slurm.conf (removed by stop):
# snakemake's job-step executor drops SLURM_* variables (SLURM_CONF too) before its inner srun,
# so jobs only find the cluster through the default path. Hence one test cluster per machine at
# a time: callers serialise with a lock (tests/slurm/test_slurm.py). A real /etc/slurm/slurm.conf
# (not a link) is never touched: start refuses.
# Accounting is off (no slurmdbd), so sacct does not work: query job states with squeue
# (snakemake: --slurm-status-command squeue), keeping finished jobs visible for MinJobAge=300 s.
set -euo pipefail

cmd="${1:?usage: slurm_cluster.sh start|stop RUNDIR}"
run="$(mkdir -p "${2:?usage: slurm_cluster.sh start|stop RUNDIR}" && cd "$2" && pwd)"

conf_link=/etc/slurm/slurm.conf
stop() {
    for name in slurmd slurmctld munged; do
        f="$run/$name.pid"
        [ -f "$f" ] || continue
        pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    done
    if [ -L "$conf_link" ] && [ "$(readlink "$conf_link")" = "$run/slurm.conf" ]; then
        rm -f "$conf_link"
    fi
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi
[ "$cmd" = start ] || { echo "unknown command $cmd (start|stop)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "slurm_cluster.sh: needs root (installs packages, runs slurmd)" >&2; exit 3; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
node="$(hostname -s)"
cpus="$(nproc)"
mem_total_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
real_mb=$(( mem_total_mb * 9 / 10 ))
ctld_port="$(free_port)"
slurmd_port="$(free_port)"
mkdir -p "$run/state" "$run/spool" "$run/log"

cat > "$run/slurm.conf" <<EOF
# written by tests/slurm/slurm_cluster.sh
ClusterName=rviflowtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$run/state
SlurmdSpoolDir=$run/spool
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
SlurmctldLogFile=$run/log/slurmctld.log
SlurmdLogFile=$run/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
MinJobAge=300
MaxJobCount=10000
DefMemPerCPU=1000
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
if [ -e "$conf_link" ] && [ ! -L "$conf_link" ]; then
    echo "slurm_cluster.sh: $conf_link exists and is not a test link: a real SLURM set-up? Not touching it." >&2
    exit 4
fi
mkdir -p "$(dirname "$conf_link")"
ln -sfn "$run/slurm.conf" "$conf_link"
export SLURM_CONF="$run/slurm.conf"

# munged: reuse a running one (the socket is machine-wide); start one only if there is none
if ! munge -n </dev/null >/dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
    [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create >/dev/null
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$run/munged.pid"
fi

/usr/sbin/slurmctld -i -f "$SLURM_CONF"
for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
/usr/sbin/slurmd -f "$SLURM_CONF"
for _ in $(seq 150); do
    state="$(sinfo -h -N -o '%T' 2>/dev/null | head -n1)"
    case "$state" in idle|mixed|allocated) break ;; esac
    sleep 0.2
done
if ! sinfo -h -N -o '%T' | grep -qE 'idle|mixed|allocated'; then
    echo "slurm_cluster.sh: node did not come up (state: $(sinfo -h -N -o '%T %E' 2>&1))" >&2
    tail -n 20 "$run/log/slurmctld.log" "$run/log/slurmd.log" >&2 || true
    stop
    exit 1
fi
echo "SLURM_CONF=$SLURM_CONF"
