#!/usr/bin/env bash
# ppf in operation on a real libvirtd (KVM, or TCG where /dev/kvm is missing), the cases
# test-hook-libvirt.sh leaves out:
#   a) virsh start on a hit (image prefetched first) and on an in-flight prefetch (the
#      deploy joins it; the policy's prefetch.bandwidth keeps the prefetch in flight);
#   b) a disk already at a ppf domain's path is never overwritten, and never fetched for;
#   e) 8 virsh start at once: all run, each on its own disk, the image fetched once;
#   c) libvirtd restarted under running domains: they keep running, the qemu hook's
#      reconnect pins their base again (run directly as libvirt would when this test may
#      not restart libvirtd);
#   d) the peripheral killed: with deploy.fallback host a domain starts on a disk
#      prepared on the host; with fail the start fails with the hook's one line; a
#      reconnect with the peripheral gone still exits 0.
# Every domain is undefined and every daemon this test started stopped at exit.
# shellcheck disable=SC2154,SC2015 # periph_pid and top_srcdir come from functions.sh
. "${top_builddir:-..}/tests/functions.sh" || exit 99
. "$top_srcdir/tests/libvirt-functions.sh" || exit 99
requires_libvirt
requires qemu-img --version
requires python3 -c 'import json'
requires_no_installed_hook
start_libvirt
t_start=$(date +%s)

T=$tmpdir
disks=/var/lib/libvirt/images/ppftest-$$
mkdir -p "$T/images" "$disks"
cleanup_fn "rm -rf '$disks'"

# --- images, policy, peripheral, hook -----------------------------------------------------
# mkimage NAME SIZE_MIB RANDOM_MIB: a raw image, RANDOM_MIB of random data (incompressible:
# it sets the prefetch time) then zeros, a marker at 1 MiB; packed into the store.
mkimage() {
    qemu-img create -q -f raw "$T/$1.raw" "${2}M" || fail "qemu-img create $1"
    [ "$3" = 0 ] || head -c "$(($3 * 1048576))" /dev/urandom |
        dd of="$T/$1.raw" conv=notrunc status=none
    printf 'ppf-%s' "$1" | dd of="$T/$1.raw" bs=1 seek=1048576 conv=notrunc status=none
    ppf-image pack "$T/$1.raw" "$T/images/$1.ppfi" >/dev/null || fail "ppf-image pack $1"
}
mkimage tiny 16 0       # hits, the existing-disk case, the fallback
mkimage slow 64 48      # in flight: 48 MiB at 8 MiB/s is ~6 s unless a deploy boosts it
mkimage fanout 16 4     # 8 domains at once

# write_policy FALLBACK: the policy (host or fail), written atomically (the hook's
# fallback reads it at each start).  No learning: no prefetch the test did not ask for.
write_policy() {
    cat >"$T/policy.yaml.tmp" <<EOT
learning:
  algorithm: none
prefetch:
  bandwidth: 8MiB/s
buffer:
  path: $T/buffer
stores:
  - {name: local, url: "file://$T/images"}
deploy:
  dirs: [$disks]
  fallback: $1
EOT
    mv "$T/policy.yaml.tmp" "$T/policy.yaml"
}
write_policy host
start_peripheral ppf0
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply"
plog=$T/ppf0.log

# libvirt strips the environment: a wrapper hands the hook our peripheral, policy and
# fallback.  It acts on this test's domains only (parallel tests have their own hooks),
# and records each call with its exit status in $T/hook-calls.log.
install_test_hook

meta() { echo "<ppf:deploy xmlns:ppf=\"urn:ppf:libvirt:1.0\" image=\"$1\"/>"; }
# counter NAME: a counter of `ppfctl --json stats`
counter() { ppfctl --json stats | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
# entry IMAGE FIELD: a field of IMAGE's buffer entry (empty if none)
entry() {
    ppfctl --json buffer | python3 -c "
import json,sys
for e in json.load(sys.stdin)['entries']:
    if e['image'] == '$1': print(e['$2']); break"
}
# start NAME: virsh start of a defined test domain; fails the test if it fails
start() {
    ppf_virsh start "$(test_domain_name "$1")" >/dev/null 2>"$T/err" ||
        { cat "$T/err"; fail "virsh start $1"; }
    [ "$(domain_state "$1")" = running ] || fail "$1 is not running after virsh start"
}
destroy() { ppf_virsh destroy "$(test_domain_name "$1")" >/dev/null 2>&1; }
# deploy_ms TARGET OUTCOME: the peripheral's time for the deploy to TARGET ("hit" or "in
# flight"), from its log line "deployed IMAGE (OWNER) to TARGET: OUTCOME in X ms"
deploy_ms() {
    grep -F "to $1: $2 in " "$plog" | tail -1 | sed 's/.* in \([0-9.]*\) ms$/\1/'
}
# backing PATH: the backing file of a qcow2 (empty if none)
backing() {
    qemu-img info -U --output=json "$1" |
        python3 -c "import json,sys; print(json.load(sys.stdin).get('backing-filename', ''))"
}

# --- a) hit and in flight -----------------------------------------------------------------
echo "# a) hit"
ppfctl prefetch tiny --wait >/dev/null || fail "prefetch tiny --wait"
[ "$(entry tiny state)" = ready ] || fail "tiny not ready after prefetch --wait"
hits0=$(counter hits)
define_test_domain hit "$disks/hit.qcow2" "$(meta tiny)"
t0=$(date +%s%N)
start hit
echo "virsh start on a hit: $((($(date +%s%N) - t0) / 1000000)) ms (deploy $(deploy_ms "$disks/hit.qcow2" hit) ms in the peripheral)"
[ "$(counter hits)" = $((hits0 + 1)) ] || fail "hits counter: $hits0 -> $(counter hits)"
grep -qF "to $disks/hit.qcow2: hit in" "$plog" || fail "the peripheral did not log a hit"
case $(backing "$disks/hit.qcow2") in
"$T/buffer/"*) ;;
*) fail "the hit's disk is not an overlay over the buffer: '$(backing "$disks/hit.qcow2")'" ;;
esac

echo "# a) in flight"
inflight0=$(counter inflight_hits)
define_test_domain inflight "$disks/inflight.qcow2" "$(meta slow)"
ppfctl prefetch slow >/dev/null || fail "prefetch slow"
[ "$(entry slow state)" = in-flight ] ||
    fail "slow is '$(entry slow state)' right after prefetch: expected in-flight (prefetch.bandwidth)"
t0=$(date +%s%N)
start inflight
ms=$((($(date +%s%N) - t0) / 1000000))
echo "virsh start on an in-flight prefetch: $ms ms (the prefetch alone would take ~6 s)"
[ "$(counter inflight_hits)" = $((inflight0 + 1)) ] ||
    fail "inflight_hits counter: $inflight0 -> $(counter inflight_hits)"
grep -qF "to $disks/inflight.qcow2: in flight in" "$plog" ||
    fail "the peripheral did not log an in-flight deploy"
[ -n "$(backing "$disks/inflight.qcow2")" ] || fail "the in-flight deploy is not an overlay"
qemu-img compare -q -U "$disks/inflight.qcow2" "$T/slow.raw" ||
    fail "the in-flight disk's content differs from the image"
destroy inflight

# --- b) an existing disk is never overwritten ---------------------------------------------
echo "# b) existing disks"
# the user's own qcow2 (not ppf's: no backing file) at ppf domains' disk paths, for an
# image in the buffer (tiny: the hit path) and one that is not (fanout: the miss path)
for d in mine1:tiny mine2:fanout; do
    n=${d%%:*} img=${d#*:}
    qemu-img create -q -f qcow2 "$disks/$n.qcow2" 32M
    qemu-io -f qcow2 -c "write -q -P 0x5a 0 64k" "$disks/$n.qcow2" >/dev/null ||
        fail "qemu-io write to $n"
    sum=$(md5sum <"$disks/$n.qcow2")
    ino=$(stat -c %i "$disks/$n.qcow2")
    define_test_domain "$n" "$disks/$n.qcow2" "$(meta "$img")"
    start "$n"
    grep -q "^ppftest-$$-$n prepare begin rc=0" "$T/hook-calls.log" ||
        fail "the hook did not pass $n's prepare"
    destroy "$n"
    [ "$(stat -c %i "$disks/$n.qcow2")" = "$ino" ] || fail "$n's disk was replaced"
    [ "$(md5sum <"$disks/$n.qcow2")" = "$sum" ] || fail "$n's disk was modified"
    [ -z "$(backing "$disks/$n.qcow2")" ] || fail "$n's disk got a backing file"
    qemu-io -f qcow2 -c "read -q -P 0x5a 0 64k" "$disks/$n.qcow2" >/dev/null ||
        fail "$n's data is gone"
done
[ -z "$(entry fanout state)" ] || fail "fanout was fetched for a disk that already existed"

# --- e) 8 domains started at once ---------------------------------------------------------
echo "# e) 8 domains at once"
read -r dep0 hit0 inf0 mis0 pb0 db0 <<<"$(ppfctl --json stats | python3 -c '
import json,sys; s=json.load(sys.stdin)
print(s["deploys"], s["hits"], s["inflight_hits"], s["misses"], s["prefetch_bytes"], s["demand_bytes"])')"
for i in 1 2 3 4 5 6 7 8; do
    define_test_domain "fan$i" "$disks/fan$i.qcow2" "$(meta fanout)"
done
t0=$(date +%s%N)
pids=()
for i in 1 2 3 4 5 6 7 8; do
    ppf_virsh start "$(test_domain_name "fan$i")" >"$T/fan$i.out" 2>&1 &
    pids+=($!)
done
failed=
for i in 1 2 3 4 5 6 7 8; do
    wait "${pids[$((i - 1))]}" || failed="$failed fan$i"
done
echo "8 virsh start at once: $((($(date +%s%N) - t0) / 1000000)) ms"
[ -z "$failed" ] || { cat "$T"/fan*.out; fail "virsh start failed for:$failed"; }
bases=
for i in 1 2 3 4 5 6 7 8; do
    [ "$(domain_state "fan$i")" = running ] || fail "fan$i is not running"
    [ -f "$disks/fan$i.qcow2" ] || fail "fan$i has no disk"
    bases="$bases$(backing "$disks/fan$i.qcow2")"$'\n'
done
[ "$(printf '%s' "$bases" | sort -u | grep -c .)" = 1 ] ||
    fail "the 8 disks are not overlays of one base: $bases"
[ "$(stat -c %i "$disks"/fan?.qcow2 | sort -u | wc -l)" = 8 ] || fail "the 8 disks are not 8 files"
read -r dep1 hit1 inf1 mis1 pb1 db1 <<<"$(ppfctl --json stats | python3 -c '
import json,sys; s=json.load(sys.stdin)
print(s["deploys"], s["hits"], s["inflight_hits"], s["misses"], s["prefetch_bytes"], s["demand_bytes"])')"
echo "deploys +$((dep1 - dep0)): hits +$((hit1 - hit0)), in flight +$((inf1 - inf0)), misses +$((mis1 - mis0))"
[ $((dep1 - dep0)) = 8 ] || fail "deploys: +$((dep1 - dep0)), expected +8"
[ $((hit1 - hit0 + inf1 - inf0 + mis1 - mis0)) = 8 ] || fail "hits+in flight+misses do not add up to 8"
[ $((mis1 - mis0)) = 1 ] || fail "misses: +$((mis1 - mis0)): expected exactly one fetch"
[ $((pb1 - pb0 + db1 - db0)) = $((16 * 1048576)) ] ||
    fail "bytes fetched: $((pb1 - pb0 + db1 - db0)), expected one 16 MiB image"
[ "$(grep -c "fanout for .* is ready" "$plog")" = 1 ] || fail "fanout was prepared more than once"
[ "$(entry fanout pins)" -ge 8 ] || fail "fanout has $(entry fanout pins) pins for 8 domains"
pids=()
for i in 1 2 3 4 5 6 7 8; do destroy "fan$i" & pids+=($!); done
wait "${pids[@]}"       # not a bare wait: the peripheral is our child too

# restart_libvirtd: stops libvirtd with scripts/libvirt-down.sh and starts it again with
# libvirt-up.sh, if it is this test's to stop: started by libvirt-up for holders (refcounted)
# and held by no other live test.  libvirt-down leaves QEMU running (libvirtd gets SIGTERM
# through ppf-reaper, which never signals the domains); it also stops virtlogd, which
# libvirt-up starts again.  `--release $$` stops the stack only if no other holder joined
# meanwhile (checked under libvirt-up's lock): then it is left running and this returns 1.
# Prints a note and returns 1 when it did not restart.
restart_libvirtd() {
    local up=$top_srcdir/scripts/libvirt-up.sh down=$top_srcdir/scripts/libvirt-down.sh
    local old others
    others=$(for f in /run/ppf/libvirt-holders.d/*; do
        [ -e "$f" ] && [ "${f##*/}" != $$ ] && kill -0 "${f##*/}" 2>/dev/null && echo "${f##*/}"
    done | tr '\n' ' ')
    if [ ! -e /run/ppf/libvirt-refcounted ] || [ -n "$others" ]; then
        echo "# NOTE: libvirtd is not this test's to restart ($([ -n "$others" ] &&
            echo "also held by ${others% }" || echo "not started by libvirt-up for tests")): skipped"
        return 1
    fi
    old=$(tr -dc 0-9 </run/ppf/libvirtd-reaper.pid 2>/dev/null)
    if [ -z "$old" ]; then
        echo "# NOTE: libvirtd does not run under ppf-reaper (libvirt-up's fallback): not restarted"
        return 1
    fi
    bash "$down" --release $$ >"$T/down.log" 2>&1 || { cat "$T/down.log"; fail "libvirt-down.sh"; }
    sed 's/^/# /' "$T/down.log"
    # (not kill -0: the stopped reaper may linger as a zombie of a slow PID 1)
    if ! grep -q "stopped libvirtd" "$T/down.log"; then
        bash "$up" --hold $$ >"$T/up.log" 2>&1 || { cat "$T/up.log"; fail "libvirt-up.sh --hold"; }
        echo "# NOTE: another test joined libvirtd meanwhile: not restarted"
        return 1
    fi
    kill -0 "$qpid" 2>/dev/null || fail "QEMU of $hitname died with libvirtd"
    bash "$up" --hold $$ >"$T/up.log" 2>&1 || { cat "$T/up.log"; fail "libvirt-up.sh after the stop"; }
    sed 's/^/# /' "$T/up.log"
    return 0
}

# --- c) libvirtd restarted under a running ppf domain ---------------------------------------
echo "# c) libvirtd restart"
hitname=$(test_domain_name hit)
uuid=$(ppf_virsh domuuid "$hitname")
pins0=$(entry tiny pins)
# lose the domain's pin on purpose (as a peripheral restarted without its state would):
# only the reconnect can bring it back
ppfctl release "$uuid" >/dev/null || fail "ppfctl release $uuid"
[ "$(entry tiny pins)" = $((pins0 - 1)) ] || fail "release: pins $pins0 -> $(entry tiny pins)"
qpid=$(cat "/run/libvirt/qemu/$hitname.pid")
restarted=0
if restart_libvirtd; then
    restarted=1
else
    echo "#    running the reconnect hook directly instead, as libvirt would"
fi
if [ "$restarted" = 1 ]; then
    for _ in $(seq 300); do
        grep -q "^$hitname reconnect begin" "$T/hook-calls.log" 2>/dev/null && break
        sleep 0.1
    done
    grep "^$hitname reconnect begin" "$T/hook-calls.log" ||
        fail "libvirtd did not run the reconnect hook for $hitname within 30 s"
    grep -q "^$hitname reconnect begin rc=0 *$" "$T/hook-calls.log" ||
        fail "the reconnect hook failed or complained"
else
    ppf_virsh dumpxml "$hitname" >"$T/live.xml" || fail "dumpxml $hitname"
    PPF_DEVICE=$PPF_DEVICE ppf-qemu-hook "$hitname" reconnect begin - <"$T/live.xml" 2>"$T/err" ||
        fail "reconnect exited $?"
    [ ! -s "$T/err" ] || { cat "$T/err"; fail "the reconnect hook complained"; }
fi
[ "$(domain_state hit)" = running ] || fail "$hitname is not running after the reconnect"
[ "$(cat "/run/libvirt/qemu/$hitname.pid")" = "$qpid" ] || fail "$hitname's QEMU changed"
kill -0 "$qpid" 2>/dev/null || fail "$hitname's QEMU is gone"
[ "$(entry tiny pins)" = "$pins0" ] ||
    fail "reconnect did not pin tiny again: pins $(entry tiny pins), expected $pins0"
grep -qF "pinned again for domain $uuid" "$plog" || fail "the peripheral did not log the re-pin"
# a second reconnect does not pin twice
ppf_virsh dumpxml "$hitname" >"$T/live.xml"
PPF_DEVICE=$PPF_DEVICE ppf-qemu-hook "$hitname" reconnect begin - <"$T/live.xml" ||
    fail "second reconnect"
[ "$(entry tiny pins)" = "$pins0" ] || fail "a second reconnect pinned again: $(entry tiny pins)"

# --- d) the peripheral killed: host fallback, or fail --------------------------------------
echo "# d) peripheral killed"
# our child: reaped here, without bash's "Killed" notice
{ kill -9 "$(cat "$T/ppf0.pid")" && wait "$periph_pid"; } 2>/dev/null
kill -0 "$periph_pid" 2>/dev/null && fail "the peripheral survived kill -9"
define_test_domain fb "$disks/fb.qcow2" "$(meta tiny)"
start fb
[ -n "$(backing "$disks/fb.qcow2")" ] || fail "the fallback disk is not an overlay"
case $(backing "$disks/fb.qcow2") in
"$T/buffer/hostfallback/"*) ;;
*) fail "the fallback disk's base is not in buffer.path/hostfallback: $(backing "$disks/fb.qcow2")" ;;
esac
qemu-img check -q -U "$disks/fb.qcow2" || fail "qemu-img check of the fallback disk"
qemu-img compare -q -U "$disks/fb.qcow2" "$T/tiny.raw" || fail "the fallback disk's content is wrong"

# a reconnect with the peripheral gone: exit 0, one line, the domain untouched
ppf_virsh dumpxml "$hitname" >"$T/live.xml"
PPF_DEVICE=$PPF_DEVICE ppf-qemu-hook "$hitname" reconnect begin - <"$T/live.xml" 2>"$T/err" ||
    fail "reconnect with the peripheral gone exited $?"
[ "$(wc -l <"$T/err")" = 1 ] && grep -q "reconnect: cannot reach the peripheral" "$T/err" ||
    { cat "$T/err"; fail "reconnect with the peripheral gone: expected one line"; }
if [ "$restarted" = 1 ] && restart_libvirtd; then
    # and through libvirt: a failing reconnect hook would get the domain killed
    for _ in $(seq 300); do
        [ "$(grep -c "^$hitname reconnect begin" "$T/hook-calls.log")" -ge 2 ] && break
        sleep 0.1
    done
    grep "^$hitname reconnect begin" "$T/hook-calls.log" | tail -1 |
        grep -q "rc=0 ppf: domain $hitname: disk $disks/hit.qcow2: reconnect: cannot reach" ||
        { cat "$T/hook-calls.log"; fail "second libvirtd restart: reconnect not logged as expected"; }
    [ "$(domain_state hit)" = running ] || fail "$hitname did not survive a reconnect without peripheral"
    kill -0 "$qpid" 2>/dev/null || fail "$hitname's QEMU was killed"
fi

write_policy fail
define_test_domain fbfail "$disks/fbfail.qcow2" "$(meta tiny)"
ppf_virsh start "$(test_domain_name fbfail)" >/dev/null 2>"$T/err" &&
    fail "a domain started with the peripheral down and deploy.fallback: fail"
grep -q "ppf: domain $(test_domain_name fbfail): disk $disks/fbfail.qcow2: the peripheral is not running and deploy.fallback is fail" "$T/err" ||
    { cat "$T/err"; fail "virsh does not show the hook's fallback: fail line"; }
[ "$(grep -c "^ppftest-$$-fbfail prepare begin rc=1" "$T/hook-calls.log")" = 1 ] &&
    [ "$(grep "^ppftest-$$-fbfail prepare" "$T/hook-calls.log" | grep -o 'ppf: domain' | wc -l)" = 1 ] ||
    fail "the hook's failure is not exactly one line"
[ -e "$disks/fbfail.qcow2" ] && fail "a disk was created with deploy.fallback: fail"
echo "ok ($(($(date +%s) - t_start)) s)"
