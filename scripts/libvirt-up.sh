#!/usr/bin/env bash
# Brings up libvirtd and virtlogd on a host without systemd (Debian 12, as root), the way
# ../shared/notes/libvirt-here.md says works: packages, the kvm group and libvirt-qemu
# user, libvirt's directories, user/group root in qemu.conf, virtlogd -d, and libvirtd in the
# foreground under ppf-reaper (a child subreaper, so `virsh destroy` does not wait for a
# slow PID 1 to reap QEMU).  Idempotent: whatever is already in place, or already running,
# is left alone; a libvirtd that answers on qemu:///system is never replaced.  Everything it
# starts is recorded in /run/ppf pidfiles, and scripts/libvirt-down.sh stops exactly that.
# Run with --help for the options.
set -euo pipefail

prog=libvirt-up
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
URI=qemu:///system
RUNDIR=/run/ppf
LOGDIR=/var/log/ppf
REAPER_PIDFILE=$RUNDIR/libvirtd-reaper.pid
LIBVIRTD_PIDFILE=$RUNDIR/libvirtd.pid # only for the fallback `libvirtd -d`
VIRTLOGD_PIDFILE=$RUNDIR/virtlogd.pid
HOLDERS=$RUNDIR/libvirt-holders.d
REFCOUNTED=$RUNDIR/libvirt-refcounted
LOCK=$RUNDIR/libvirt-updown.lock
QEMU_CONF=/etc/libvirt/qemu.conf
WAIT_S=30

usage() {
    cat <<EOF
Usage: $0 [--hold PID] [--wait SECONDS]
Make sure libvirtd (qemu:///system) and virtlogd run on this host; start what is missing.

  --hold PID      register process PID as a user of the stack (tests do this).  A stack
                  started with --hold is refcounted: 'libvirt-down.sh --release PID'
                  stops it only when no live holder remains.  A stack started without
                  --hold is stopped only by a plain 'libvirt-down.sh'.
  --wait SECONDS  how long to wait for libvirtd to answer (default $WAIT_S)
  -h, --help      show this help

Needs root.  Installs packages with scripts/install-deps.sh only if libvirtd is missing.
Starts libvirtd under ppf-reaper (\$PPF_REAPER, else ppf-reaper in PATH; without it, plain
'libvirtd -d' with a warning).  Logs: $LOGDIR/libvirtd.log, $LOGDIR/virtlogd.log.
Pidfiles: $REAPER_PIDFILE (or $LIBVIRTD_PIDFILE), $VIRTLOGD_PIDFILE.
Stop with scripts/libvirt-down.sh.
EOF
}

hold=
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --hold) [ $# -ge 2 ] || { echo "$prog: --hold needs a PID" >&2; exit 2; }
        hold=$2; shift 2 ;;
    --hold=*) hold=${1#--hold=}; shift ;;
    --wait) [ $# -ge 2 ] || { echo "$prog: --wait needs a number" >&2; exit 2; }
        WAIT_S=$2; shift 2 ;;
    --wait=*) WAIT_S=${1#--wait=}; shift ;;
    *) echo "$prog: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case $hold in '' | *[!0-9]*) [ -z "$hold" ] || { echo "$prog: --hold: not a PID: $hold" >&2; exit 2; } ;; esac
case $WAIT_S in '' | *[!0-9]*) echo "$prog: --wait: not a number: $WAIT_S" >&2; exit 2 ;; esac

say() { echo "$prog: $*"; }
die() { echo "$prog: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it creates users, edits $QEMU_CONF, starts daemons)"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# --- packages -----------------------------------------------------------------------------
if ! command -v libvirtd >/dev/null 2>&1; then
    say "libvirtd is missing: running scripts/install-deps.sh"
    bash "$here/install-deps.sh"
    command -v libvirtd >/dev/null 2>&1 || die "libvirtd still missing after install-deps.sh"
fi
for p in virtlogd virsh; do
    command -v $p >/dev/null 2>&1 || die "$p is missing (run scripts/install-deps.sh)"
done

mkdir -p "$RUNDIR" "$LOGDIR"

# One libvirt-up or libvirt-down at a time (parallel tests call us together).  Every daemon
# started below gets '9>&-' so that none of them inherits (and keeps holding) the lock.
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

virsh_ok() { timeout 10 virsh -c "$URI" version >/dev/null 2>&1; }

add_holder() {
    [ -n "$hold" ] || return 0
    mkdir -p "$HOLDERS"
    : >"$HOLDERS/$hold"
    say "registered holder $hold"
}

# --- virtlogd ----------------------------------------------------------------------------
# ensure_virtlogd: starts virtlogd (pidfile $VIRTLOGD_PIDFILE) unless one is running;
# virsh start fails without it (/run/libvirt/virtlogd-sock).
ensure_virtlogd() {
    local other='' p pid
    mkdir -p /run/libvirt
    for p in $(pgrep -x virtlogd || :); do
        if live "$p"; then other="$other $p"; fi
    done
    if pid=$(pid_alive "$VIRTLOGD_PIDFILE" virtlogd); then
        say "virtlogd already running (pid $pid, started by libvirt-up)"
    elif [ -n "$other" ]; then
        say "virtlogd already running (not started by libvirt-up, pid${other})"
    else
        rm -f "$VIRTLOGD_PIDFILE"
        virtlogd -d -p "$VIRTLOGD_PIDFILE" </dev/null >>"$LOGDIR/virtlogd.log" 2>&1 9>&- ||
            die "virtlogd failed to start (see $LOGDIR/virtlogd.log)"
        for _ in $(seq 100); do
            [ -S /run/libvirt/virtlogd-sock ] && [ -s "$VIRTLOGD_PIDFILE" ] && break
            sleep 0.05
        done
        [ -S /run/libvirt/virtlogd-sock ] || die "virtlogd did not create /run/libvirt/virtlogd-sock"
        say "started virtlogd (pid $(cat "$VIRTLOGD_PIDFILE"), log $LOGDIR/virtlogd.log)"
    fi
}

# --- a libvirtd already answering ----------------------------------------------------------
if virsh_ok; then
    if pid=$(pid_alive "$REAPER_PIDFILE" ppf-reaper) || pid=$(pid_alive "$LIBVIRTD_PIDFILE" libvirtd); then
        say "libvirtd already running (started by libvirt-up, pid $pid)"
        add_holder
    else
        say "libvirtd already running (not started by libvirt-up): using it"
    fi
    ensure_virtlogd
    exit 0
fi

# --- users, groups, directories --------------------------------------------------------------
if ! getent group kvm >/dev/null; then
    groupadd -r kvm
    say "created group kvm"
fi
if ! getent group libvirt-qemu >/dev/null; then
    groupadd -r libvirt-qemu
    say "created group libvirt-qemu"
fi
if ! getent passwd libvirt-qemu >/dev/null; then
    useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin \
        -c "Libvirt Qemu" libvirt-qemu
    say "created user libvirt-qemu"
fi
for d in /var/log/libvirt/qemu /var/lib/libvirt/images /run/libvirt; do
    if [ ! -d "$d" ]; then
        mkdir -p "$d"
        say "created $d"
    fi
done

# --- qemu.conf: user = "root", group = "root" (edited only where not already so) -----------
mkdir -p "$(dirname "$QEMU_CONF")"
[ -e "$QEMU_CONF" ] || { : >"$QEMU_CONF"; say "created $QEMU_CONF"; }
for key in user group; do
    if grep -Eq "^[[:space:]]*${key}[[:space:]]*=[[:space:]]*\"root\"[[:space:]]*(#.*)?$" "$QEMU_CONF"; then
        continue
    fi
    if grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$QEMU_CONF"; then
        [ -e "$QEMU_CONF.ppf-orig" ] || cp -p "$QEMU_CONF" "$QEMU_CONF.ppf-orig"
        say "warning: $QEMU_CONF sets $key to something else; changing it to \"root\" (original kept in $QEMU_CONF.ppf-orig)" >&2
        sed -i -E "s/^[[:space:]]*${key}[[:space:]]*=.*/$key = \"root\"  # set by ppf libvirt-up/" "$QEMU_CONF"
    else
        printf '%s = "root"  # set by ppf libvirt-up\n' "$key" >>"$QEMU_CONF"
    fi
    say "set $key = \"root\" in $QEMU_CONF"
done

ensure_virtlogd

# --- libvirtd --------------------------------------------------------------------------------
reaper=${PPF_REAPER:-}
if [ -z "$reaper" ]; then
    reaper=$(command -v ppf-reaper 2>/dev/null || :)
fi
if [ -n "$reaper" ] && [ ! -x "$reaper" ]; then
    die "PPF_REAPER=$reaper is not executable"
fi

if pid=$(pid_alive "$REAPER_PIDFILE" ppf-reaper) || pid=$(pid_alive "$LIBVIRTD_PIDFILE" libvirtd); then
    # Ours, but not answering yet (another libvirt-up is waiting for it, or it hangs).
    say "libvirtd started by libvirt-up is running (pid $pid) but not answering yet; waiting"
else
    rm -f "$REAPER_PIDFILE" "$LIBVIRTD_PIDFILE"
    echo "=== $(date -Is) libvirt-up: starting libvirtd" >>"$LOGDIR/libvirtd.log"
    if [ -n "$reaper" ]; then
        # setsid: its own session, so a terminal's ^C or the caller's process group
        # never reaches it; stdio to the log, so it holds no pipe of the caller open.
        setsid "$reaper" --pidfile "$REAPER_PIDFILE" -- libvirtd \
            </dev/null >>"$LOGDIR/libvirtd.log" 2>&1 9>&- &
        for _ in $(seq 100); do
            [ -s "$REAPER_PIDFILE" ] && break
            sleep 0.05
        done
        pid=$(pid_alive "$REAPER_PIDFILE" ppf-reaper) ||
            { tail -20 "$LOGDIR/libvirtd.log" >&2; die "ppf-reaper did not start (see $LOGDIR/libvirtd.log)"; }
        say "started libvirtd under $reaper (reaper pid $pid, log $LOGDIR/libvirtd.log)"
    else
        echo "$prog: warning: ppf-reaper not found (set PPF_REAPER or put it in PATH): starting plain 'libvirtd -d'; orphaned QEMU processes are then reaped late by PID 1 and 'virsh destroy' is slow" >&2
        libvirtd -d -p "$LIBVIRTD_PIDFILE" </dev/null >>"$LOGDIR/libvirtd.log" 2>&1 9>&- ||
            die "libvirtd -d failed (see $LOGDIR/libvirtd.log)"
        for _ in $(seq 100); do
            [ -s "$LIBVIRTD_PIDFILE" ] && break
            sleep 0.05
        done
        pid=$(pid_alive "$LIBVIRTD_PIDFILE" libvirtd) || die "libvirtd -d did not stay up (see $LOGDIR/libvirtd.log)"
        say "started libvirtd -d (pid $pid, log $LOGDIR/libvirtd.log)"
    fi
    # Refcounted only if started on behalf of a holder (a test); see --help.
    rm -rf "$HOLDERS"
    if [ -n "$hold" ]; then
        : >"$REFCOUNTED"
    else
        rm -f "$REFCOUNTED"
    fi
fi

t0=$(date +%s%N)
deadline=$((t0 + WAIT_S * 1000000000))
until virsh_ok; do
    if ! pid_alive "$REAPER_PIDFILE" ppf-reaper >/dev/null && ! pid_alive "$LIBVIRTD_PIDFILE" libvirtd >/dev/null; then
        tail -20 "$LOGDIR/libvirtd.log" >&2
        die "libvirtd exited during start-up (see $LOGDIR/libvirtd.log)"
    fi
    if [ "$(date +%s%N)" -gt "$deadline" ]; then
        tail -20 "$LOGDIR/libvirtd.log" >&2
        die "libvirtd did not answer on $URI within $WAIT_S s (see $LOGDIR/libvirtd.log; stop it with scripts/libvirt-down.sh)"
    fi
    sleep 0.1
done
add_holder
say "libvirtd answers on $URI after $((($(date +%s%N) - t0) / 1000000)) ms"
