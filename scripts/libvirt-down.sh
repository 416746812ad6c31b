#!/usr/bin/env bash
# Stops exactly what scripts/libvirt-up.sh started, found by its pidfiles in /run/ppf: the
# ppf-reaper running libvirtd (or the fallback `libvirtd -d`), then virtlogd.  Each PID is
# checked against the process name it must have before it is signalled, so a stale pidfile
# never hits an unrelated process; a libvirtd or virtlogd that libvirt-up did not start is
# never touched.  With --release PID (what tests use) it only drops that holder, and stops
# the stack only if libvirt-up started it for holders and no live holder is left.
# Run with --help for the options.
set -euo pipefail

prog=libvirt-down
URI=qemu:///system
RUNDIR=/run/ppf
REAPER_PIDFILE=$RUNDIR/libvirtd-reaper.pid
LIBVIRTD_PIDFILE=$RUNDIR/libvirtd.pid
VIRTLOGD_PIDFILE=$RUNDIR/virtlogd.pid
HOLDERS=$RUNDIR/libvirt-holders.d
REFCOUNTED=$RUNDIR/libvirt-refcounted
LOCK=$RUNDIR/libvirt-updown.lock

usage() {
    cat <<EOF
Usage: $0 [--release PID]
Stop the libvirtd and virtlogd that scripts/libvirt-up.sh started (by their pidfiles in
$RUNDIR); never any other process.

  --release PID   drop holder PID (see libvirt-up.sh --hold) and stop the stack only if
                  it was started for holders and no live holder remains
  -h, --help      show this help

Domains still running when libvirtd stops keep running (libvirt reconnects to them on its
next start); they are listed as a warning.
EOF
}

release=
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --release) [ $# -ge 2 ] || { echo "$prog: --release needs a PID" >&2; exit 2; }
        release=$2; shift 2 ;;
    --release=*) release=${1#--release=}; shift ;;
    *) echo "$prog: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case $release in '' | *[!0-9]*) [ -z "$release" ] || { echo "$prog: --release: not a PID: $release" >&2; exit 2; } ;; esac

say() { echo "$prog: $*"; }
die() { echo "$prog: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
[ -d "$RUNDIR" ] || { say "nothing was started by libvirt-up ($RUNDIR is missing)"; exit 0; }

exec 9>"$LOCK"
flock -w 120 9 || die "timed out waiting for $LOCK"

# live PID: 0 if PID exists and is not a zombie (PID 1 here reaps orphans late).
live() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# pid_alive PIDFILE COMM: prints the PID in PIDFILE if that process is live and is COMM.
pid_alive() {
    local pid comm
    [ -s "$1" ] || return 1
    pid=$(head -c 32 "$1" | tr -dc 0-9)
    [ -n "$pid" ] && live "$pid" || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [ "$comm" = "$2" ] || return 1
    echo "$pid"
}

# wait_gone PID SECONDS: 0 once PID is gone (or a zombie), 1 on timeout.
wait_gone() {
    local pid=$1 n=$(($2 * 20))
    while [ "$n" -gt 0 ]; do
        live "$pid" || return 0
        sleep 0.05
        n=$((n - 1))
    done
    return 1
}

if [ -n "$release" ]; then
    rm -f "$HOLDERS/$release"
    if [ ! -e "$REFCOUNTED" ]; then
        say "released holder $release; the stack was not started for holders: leaving it running"
        exit 0
    fi
    live=()
    for f in "$HOLDERS"/*; do
        [ -e "$f" ] || continue
        h=${f##*/}
        if kill -0 "$h" 2>/dev/null; then
            live+=("$h")
        else
            rm -f "$f"
        fi
    done
    if [ ${#live[@]} -gt 0 ]; then
        say "released holder $release; still used by ${live[*]}: leaving it running"
        exit 0
    fi
    say "released holder $release, the last one: stopping"
fi

stopped=0
if pid=$(pid_alive "$REAPER_PIDFILE" ppf-reaper) || pid=$(pid_alive "$LIBVIRTD_PIDFILE" libvirtd); then
    running=$(timeout 5 virsh -c "$URI" list --name 2>/dev/null | sed '/^$/d' | tr '\n' ' ' || :)
    [ -z "$running" ] ||
        echo "$prog: warning: domains still running (they outlive libvirtd): $running" >&2
    comm=$(cat "/proc/$pid/comm")
    # The libvirtd under the reaper, to be killed by name only if it will not stop.
    child=
    if [ "$comm" = ppf-reaper ]; then
        # shellcheck disable=SC2013
        for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
            if [ "$(cat "/proc/$c/comm" 2>/dev/null)" = libvirtd ]; then child=$c; fi
        done
    else
        child=$pid
    fi
    kill -TERM "$pid" 2>/dev/null || :
    if ! wait_gone "$pid" 30; then
        echo "$prog: warning: $comm (pid $pid) still running 30 s after SIGTERM: SIGKILL" >&2
        [ -z "$child" ] || kill -KILL "$child" 2>/dev/null || :
        wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || :
        wait_gone "$pid" 5 || :
    fi
    say "stopped libvirtd ($comm pid $pid)"
    stopped=1
    # the tests' hook dispatcher (tests/libvirt-functions.sh): safe to remove now,
    # unless a test that restarts libvirtd still has its hook there
    if [ -z "$(ls -A /run/ppf/test-hooks 2>/dev/null)" ]; then
        rm -f /etc/libvirt/hooks/qemu.d/ppftest-dispatch
        rmdir /run/ppf/test-hooks 2>/dev/null || :
    fi
fi
rm -f "$REAPER_PIDFILE" "$LIBVIRTD_PIDFILE"

if pid=$(pid_alive "$VIRTLOGD_PIDFILE" virtlogd); then
    kill -TERM "$pid" 2>/dev/null || :
    if ! wait_gone "$pid" 10; then
        echo "$prog: warning: virtlogd (pid $pid) still running 10 s after SIGTERM: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || :
        wait_gone "$pid" 5 || :
    fi
    say "stopped virtlogd (pid $pid)"
    stopped=1
fi
rm -f "$VIRTLOGD_PIDFILE" "$REFCOUNTED"
rm -rf "$HOLDERS"
[ "$stopped" = 1 ] || say "nothing started by libvirt-up is running"
exit 0
