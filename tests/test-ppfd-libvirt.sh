#!/usr/bin/env bash
# ppfd's libvirt plugin on a real libvirtd: the lifecycle events (DEFINED,
# STARTED, STOPPED, UNDEFINED) of a domain with ppf metadata go to the
# peripheral as EVENT, those of a plain domain do not; when libvirtd goes
# away ppfd says so once, keeps running, reconnects when it is back, and
# catches up on domains defined and undefined meanwhile.  libvirtd "going
# away" is played by a socket proxy in front of it (always), and by a real
# restart when this test started libvirtd and nobody else uses it.
. "${top_builddir:-..}/tests/functions.sh" || exit 99
. "$top_srcdir/tests/libvirt-functions.sh" || exit 99
requires_libvirt
requires qemu-img --version
requires python3 --version
# the system's interpreter if there is one: a version manager's shim costs a second a call
PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
start_libvirt

T=$tmpdir
disks=/var/lib/libvirt/images/ppftest-$$
mkdir -p "$disks"
cleanup_fn "rm -rf '$disks'"
wait_for() {   # wait_for SECONDS CMD...
    local n=$(($1 * 10)); shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
# logged LOG REGEX: ppfd logged a line matching REGEX
logged() { grep -Eq -- "$2" "$1"; }
# forwarded LOG DOMAIN KIND: ppfd forwarded KIND of DOMAIN
forwarded() { logged "$1" "libvirt: domain $2 \\([-0-9a-f]{36}\\) $3.*forwarding"; }

# start_ppfd NAME DEVICE URI: ppfd as our child, logging (debug) to $T/NAME.log
start_ppfd() {
    local name=$1 pid
    rm -f "$T/$name.pid"
    ppfd --policy "$T/no-policy.yaml" --device "$2" --connect "$3" --verbose \
        --exit-with-parent --pidfile "$T/$name.pid" 2>>"$T/$name.log" &
    pid=$!
    eval "${name}_pid=$pid"
    cleanup_fn "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    wait_for 10 test -s "$T/$name.pid" || { cat "$T/$name.log" >&2; fail "$name did not start"; }
}
stop_ppfd() {   # stop_ppfd NAME: SIGTERM, clean exit 0
    local pid
    pid=$(cat "$T/$1.pid")
    kill "$pid"
    wait "$pid" || { tail -20 "$T/$1.log" >&2; fail "$1 exited with status $? on SIGTERM"; }
    logged "$T/$1.log" "main: stopped" || fail "$1 did not stop cleanly"
}

meta() { echo "<ppf:deploy xmlns:ppf=\"urn:ppf:libvirt:1.0\" image=\"$1\" tenant=\"acme\"/>"; }

start_peripheral ppf0
start_ppfd ppfd "$PPF_DEVICE" qemu:///system
wait_for 10 logged "$T/ppfd.log" "connected to qemu:///system" ||
    { cat "$T/ppfd.log" >&2; fail "ppfd did not connect to qemu:///system"; }

# --- a ppf domain and a plain one through their lifecycle -------------------------------
make_test_disk "$disks/ppf.qcow2" 64M
make_test_disk "$disks/plain.qcow2" 64M
define_test_domain ppf "$disks/ppf.qcow2" "$(meta tiny)"
ppfdom=$domain
define_test_domain plain "$disks/plain.qcow2"
plaindom=$domain
wait_for 10 forwarded "$T/ppfd.log" "$ppfdom" DEFINED ||
    { cat "$T/ppfd.log" >&2; fail "DEFINED of the ppf domain not forwarded"; }
logged "$T/ppfd.log" "domain $ppfdom .*DEFINED: image tiny, tenant acme" ||
    fail "DEFINED does not carry the image and tenant of the metadata"

started=0
if ppf_virsh start "$ppfdom" >/dev/null 2>"$T/start.err"; then
    started=1
    wait_for 10 forwarded "$T/ppfd.log" "$ppfdom" STARTED ||
        { cat "$T/ppfd.log" >&2; fail "STARTED of the ppf domain not forwarded"; }
    ppf_virsh destroy "$ppfdom" >/dev/null || fail "virsh destroy $ppfdom"
    wait_for 10 forwarded "$T/ppfd.log" "$ppfdom" STOPPED ||
        { cat "$T/ppfd.log" >&2; fail "STOPPED of the ppf domain not forwarded"; }
else
    # a ppf hook of another test running in parallel may refuse our domain
    echo "# note: virsh start $ppfdom failed, STARTED/STOPPED not checked: $(head -c 300 "$T/start.err")"
fi
ppf_virsh start "$plaindom" >/dev/null 2>"$T/start.err" || { cat "$T/start.err" >&2; fail "virsh start $plaindom"; }
ppf_virsh destroy "$plaindom" >/dev/null || fail "virsh destroy $plaindom"
ppf_virsh undefine "$plaindom" >/dev/null || fail "virsh undefine $plaindom"
ppf_virsh undefine "$ppfdom" >/dev/null || fail "virsh undefine $ppfdom"
wait_for 10 forwarded "$T/ppfd.log" "$ppfdom" UNDEFINED ||
    { cat "$T/ppfd.log" >&2; fail "UNDEFINED of the ppf domain not forwarded"; }
wait_for 5 logged "$T/ppfd.log" "domain $plaindom UNDEFINED: not a ppf domain" ||
    { cat "$T/ppfd.log" >&2; fail "the plain domain's UNDEFINED was not seen"; }
logged "$T/ppfd.log" "domain $plaindom .*forwarding" && fail "an event of the plain domain was forwarded"

# the peripheral got them (its events counter, once it has one; until it
# takes EVENT at all, ppfd says so once)
want=$((2 + 2 * started))
if ppfctl --json stats | grep -q '"events"'; then
    wait_for 10 logged "$T/ppfd.log" "sent UNDEFINED of domain $ppfdom" ||
        { cat "$T/ppfd.log" >&2; fail "UNDEFINED not sent to the peripheral"; }
    ppfctl --json stats | "$PY" -c "import json,sys; s=json.load(sys.stdin); assert s['events'] >= $want, s" ||
        fail "the peripheral counted fewer than $want events"
else
    logged "$T/ppfd.log" "the peripheral does not take EVENT yet" ||
        fail "a peripheral without EVENT was not reported"
    [ "$(grep -c "does not take EVENT yet" "$T/ppfd.log")" = 1 ] ||
        fail "the missing EVENT was reported more than once"
fi

# --- reconnect, through a proxy in front of libvirtd's socket ---------------------------
lvsock=/run/libvirt/libvirt-sock
[ -S /run/libvirt/virtqemud-sock ] && ! [ -S "$lvsock" ] && lvsock=/run/libvirt/virtqemud-sock
cat >"$T/proxy.py" <<'EOF'
import os, socket, sys, threading
listen, target = sys.argv[1], sys.argv[2]
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
try:
    os.unlink(listen)
except FileNotFoundError:
    pass
srv = socket.socket(socket.AF_UNIX)
srv.bind(listen)
srv.listen(16)
while True:
    c, _ = srv.accept()
    u = socket.socket(socket.AF_UNIX)
    try:
        u.connect(target)
    except OSError:
        c.close()
        continue
    for a, b in ((c, u), (u, c)):
        threading.Thread(target=pump, args=(a, b), daemon=True).start()
EOF
start_proxy() {
    rm -f "$T/lv.sock"
    "$PY" "$T/proxy.py" "$T/lv.sock" "$lvsock" 2>>"$T/proxy.err" &
    proxy_pid=$!
    cleanup_fn "kill $proxy_pid 2>/dev/null; wait $proxy_pid 2>/dev/null"
    wait_for 10 test -S "$T/lv.sock" || fail "the socket proxy did not start"
}
stop_proxy() { kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null; rm -f "$T/lv.sock"; }

# (its peripheral comes later: the events wait in ppfd's queue meanwhile)
start_proxy
uri="qemu+unix:///system?socket=$T/lv.sock"
start_ppfd ppfd2 "emu:$T/ppf1" "$uri"
wait_for 10 logged "$T/ppfd2.log" "connected to qemu\\+unix" ||
    { cat "$T/ppfd2.log" >&2; fail "ppfd did not connect through the proxy"; }
define_test_domain gone "$disks/gone.qcow2" "$(meta gone-image)"
gonedom=$domain
wait_for 10 forwarded "$T/ppfd2.log" "$gonedom" DEFINED || fail "DEFINED through the proxy"
wait_for 5 logged "$T/ppfd2.log" "domain events wait for it" ||
    { cat "$T/ppfd2.log" >&2; fail "events for an absent peripheral were not reported as waiting"; }
start_peripheral ppf1
wait_for 10 logged "$T/ppfd2.log" "(sent DEFINED of domain $gonedom|does not take EVENT yet)" ||
    { cat "$T/ppfd2.log" >&2; fail "the queued DEFINED did not reach the peripheral once it came"; }

stop_proxy      # libvirtd "goes away"
wait_for 10 logged "$T/ppfd2.log" "lost the connection to qemu\\+unix" ||
    { cat "$T/ppfd2.log" >&2; fail "the lost connection was not reported"; }
ppf_virsh undefine "$gonedom" >/dev/null || fail "virsh undefine $gonedom"
define_test_domain late "$disks/late.qcow2" "$(meta late-image)"
latedom=$domain
sleep 1.5       # at least one failed retry
kill -0 "$ppfd2_pid" || fail "ppfd died without libvirt"
start_proxy     # ... and comes back
wait_for 15 logged "$T/ppfd2.log" "reconnected to qemu\\+unix" ||
    { cat "$T/ppfd2.log" >&2; fail "ppfd did not reconnect"; }
wait_for 5 logged "$T/ppfd2.log" "domain $latedom .*DEFINED \\(already defined\\)" ||
    { cat "$T/ppfd2.log" >&2; fail "a domain defined while ppfd was away was not reported"; }
wait_for 5 logged "$T/ppfd2.log" "domain $gonedom .*UNDEFINED \\(while disconnected\\)" ||
    { cat "$T/ppfd2.log" >&2; fail "a domain undefined while ppfd was away was not reported"; }
logged "$T/ppfd2.log" "libvirt:.*next try in" || fail "no retry while libvirt was away"
[ "$(grep -Ec "warn: libvirt: (lost the connection|.*cannot connect)" "$T/ppfd2.log")" = 1 ] ||
    { grep "warn: libvirt" "$T/ppfd2.log" >&2; fail "the outage was reported more than once"; }
stop_ppfd ppfd2

# --- a real libvirtd restart, if it is ours alone -----------------------------------------
holders=$(ls /run/ppf/libvirt-holders.d 2>/dev/null | tr '\n' ' ')
if [ "$libvirt_started" = 1 ] && [ "$holders" = "$$ " ]; then
    bash "$top_srcdir/scripts/libvirt-down.sh" --release $$ >>"$T/libvirt-down.log" 2>&1 ||
        fail "libvirt-down.sh"
    wait_for 35 logged "$T/ppfd.log" "lost the connection to qemu:///system" ||
        { cat "$T/ppfd.log" >&2; fail "ppfd did not notice libvirtd stopping"; }
    kill -0 "$ppfd_pid" || fail "ppfd died when libvirtd stopped"
    bash "$top_srcdir/scripts/libvirt-up.sh" --hold $$ >>"$T/libvirt-up.log" 2>&1 ||
        { cat "$T/libvirt-up.log" >&2; fail "libvirt-up.sh"; }
    wait_for 35 logged "$T/ppfd.log" "reconnected to qemu:///system" ||
        { cat "$T/ppfd.log" >&2; fail "ppfd did not reconnect to the restarted libvirtd"; }
    echo "libvirtd restarted: ppfd reconnected"
else
    echo "# note: libvirtd is not this test's alone (started here: $libvirt_started, holders: ${holders:-none}): not restarting it; reconnect was checked through the proxy"
fi
stop_ppfd ppfd
echo ok
