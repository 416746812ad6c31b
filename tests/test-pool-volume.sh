#!/usr/bin/env bash
# Disks that are volumes of a ppf pool, on a real libvirtd (KVM, or TCG where /dev/kvm is
# missing): ppfctl vol-create writes the volume's record and an empty placeholder that
# libvirt lists, and asks the peripheral to prefetch the image; a domain with
# <disk type='volume'> in the pool and no ppf metadata starts on a qcow2 overlay over the
# buffer's base (ppf-qemu-hook replaces the placeholder), keeps it on the next start, and
# reconnect re-pins it; a domain with two such disks gets both, a copy-mode volume a raw
# copy; vol-create over an existing name or file changes nothing; the pool's prepared
# image used as a disk, or a disk whose driver type does not match, fails the start with
# the hook's one line; with the peripheral stopped the host fallback deploys a placeholder
# too (or, with deploy.fallback: fail, leaves it alone); vol-list, vol-delete and
# pool-undefine.  Every domain and pool is named ppftest-PID-* and removed at exit, with
# the hook wrapper and every daemon this test started.
# shellcheck disable=SC2154 # top_srcdir, tmpdir come from functions.sh
. "${top_builddir:-..}/tests/functions.sh" || exit 99
. "$top_srcdir/tests/libvirt-functions.sh" || exit 99
requires_libvirt
requires qemu-img --version
requires python3 -c 'import json'
requires_no_installed_hook
start_libvirt

T=$tmpdir
PPF_POOL_DIR=$T/pool-state
PPF_SCHEMA_DIR=$top_srcdir/schemas
export PPF_POOL_DIR PPF_SCHEMA_DIR
pools=/var/lib/libvirt/images/ppftest-$$
mkdir -p "$T/images" "$pools"
cleanup_fn "rm -rf '$pools'"

qemu-img create -q -f raw "$T/tiny.raw" 16M
printf 'ppf-volume' | dd of="$T/tiny.raw" bs=1 seek=1048576 conv=notrunc status=none
ppf-image pack "$T/tiny.raw" "$T/images/tiny.ppfi" >/dev/null || fail "ppf-image pack"
# write_policy FALLBACK: host or fail (the hook's fallback reads it at each start)
write_policy() {
    cat >"$T/policy.yaml.tmp" <<EOT
buffer:
  path: $T/buffer
stores:
  - {name: local, url: "file://$T/images"}
deploy:
  dirs: [$pools]
  fallback: $1
EOT
    mv "$T/policy.yaml.tmp" "$T/policy.yaml"
}
write_policy host
start_peripheral ppf0
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply"

# libvirt strips the environment: a wrapper hands the hook our peripheral, policy, pool
# state and fallback, for this test's domains only, and logs every call.
install_test_hook PPF_POOL_DIR="$PPF_POOL_DIR"

gold=ppftest-$$-gold
dir=$pools/$gold
_cleanup_pool() {
    ppf_virsh pool-destroy "$1" >/dev/null 2>&1
    ppf_virsh pool-undefine "$1" >/dev/null 2>&1
    :
}
cleanup_fn "_cleanup_pool '$gold'"
cat >"$T/gold.xml" <<EOT
<pool type='dir'>
  <name>$gold</name>
  <ppf:pool xmlns:ppf="urn:ppf:libvirt:1.0" store="local"/>
  <target><path>$dir</path></target>
</pool>
EOT
ppfctl pool-define "$T/gold.xml" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "pool-define"; }

# vol_domain NAME VOLUME[:FORMAT]...: defines a throw-away domain (no ppf metadata) whose
# disks vda, vdb, ... are those volumes of $gold; FORMAT is the driver type (default
# qcow2; "none": no type).  Sets $domain.
vol_domain() {
    local name
    name=$(test_domain_name "$1")
    shift
    test_domain_xml "$name" @DISK@ | python3 -c '
import sys
pool, disks, xml = sys.argv[1], sys.argv[2:], sys.stdin.read()
a = xml.index("<disk type=\x27file\x27")
b = xml.index("</disk>", a) + len("</disk>")
out = []
for i, d in enumerate(disks):
    vol, _, fmt = d.partition(":")
    fmt = fmt or "qcow2"
    drv = "" if fmt == "none" else " type=\x27%s\x27" % fmt
    out.append("<disk type=\x27volume\x27 device=\x27disk\x27><driver name=\x27qemu\x27%s/>"
               "<source pool=\x27%s\x27 volume=\x27%s\x27/><target dev=\x27vd%s\x27 "
               "bus=\x27virtio\x27/></disk>" % (drv, pool, vol, "abcdefgh"[i]))
sys.stdout.write(xml[:a] + "\n    ".join(out) + xml[b:])' "$gold" "$@" >"$T/$name.xml" ||
        fail "domain XML for $name"
    cleanup_fn "_cleanup_test_domain '$name'"
    ppf_virsh define "$T/$name.xml" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "define $name"; }
    domain=$name
}
start() {
    ppf_virsh start "$(test_domain_name "$1")" >/dev/null 2>"$T/err" ||
        { cat "$T/err" "$T/hook-calls.log"; fail "virsh start $1"; }
    [ "$(domain_state "$1")" = running ] || fail "$1 is not running after virsh start"
}
destroy() { ppf_virsh destroy "$(test_domain_name "$1")" >/dev/null 2>&1; }
# start_fails NAME FRAGMENT: virsh start fails and shows the hook's line with FRAGMENT
start_fails() {
    ppf_virsh start "$(test_domain_name "$1")" >/dev/null 2>"$T/err" &&
        fail "$1 started; expected: $2"
    grep -qF -- "$2" "$T/err" || { cat "$T/err"; fail "virsh start $1 does not show '$2'"; }
    sed 's/^/# /' "$T/err"
}
# expect_fail FRAGMENT CMD...: CMD fails and says FRAGMENT on stderr
expect_fail() {
    local frag=$1
    shift
    "$@" >"$T/out" 2>"$T/err" && { cat "$T/out" "$T/err"; fail "succeeded: $*"; }
    grep -qF -- "$frag" "$T/err" || { cat "$T/err"; fail "no '$frag' in the error of: $*"; }
    sed 's/^/# /' "$T/err"
}
backing() {
    qemu-img info -U --output=json "$1" |
        python3 -c "import json,sys; print(json.load(sys.stdin).get('backing-filename', ''))"
}
# entry IMAGE FIELD: a field of IMAGE's buffer entry (empty if none)
entry() {
    ppfctl --json buffer | python3 -c "
import json,sys
for e in json.load(sys.stdin)['entries']:
    if e['image'] == '$1': print(e['$2']); break"
}
# disk_of VOLUME: the volume's disk state in vol-list --json
disk_of() {
    ppfctl --json vol-list "$gold" | python3 -c "
import json,sys
print([v['disk'] for v in json.load(sys.stdin)['volumes'] if v['name'] == '$1'][0])"
}
ino() { stat -c %i "$1"; }

# --- vol-create: record, placeholder, libvirt volume, prefetch hint ------------------------
ppfctl vol-create "$gold" vm1 --image tiny >"$T/out" 2>"$T/err" ||
    { cat "$T/out" "$T/err"; fail "vol-create vm1"; }
sed 's/^/# /' "$T/out" "$T/err"
[ -s "$T/err" ] && fail "vol-create printed on stderr with the peripheral up"
rec=$PPF_POOL_DIR/$gold.volumes/vm1
[ "$(cat "$rec")" = "image tiny
tenant default
mode overlay
target $dir/vm1" ] || { cat "$rec"; fail "the record of vm1"; }
[ -f "$dir/vm1" ] && [ ! -s "$dir/vm1" ] || fail "no empty placeholder at $dir/vm1"
[ "$(stat -c %a "$dir/vm1")" = 600 ] || fail "the placeholder is not 0600"
ppf_virsh vol-list "$gold" | grep -q "vm1 " || { ppf_virsh vol-list "$gold"; fail "libvirt does not list vm1"; }
[ "$(disk_of vm1)" = placeholder ] || fail "vol-list does not show vm1 as a placeholder"
# EVENT DEFINED made the peripheral prefetch the image: the first start is a hit
for _ in $(seq 100); do
    [ "$(entry tiny state)" = ready ] && break
    sleep 0.2
done
[ "$(entry tiny state)" = ready ] || { ppfctl buffer; fail "vol-create's hint did not prefetch tiny"; }

# existing names and files: an error, nothing changed
expect_fail "has a volume vm1 already" ppfctl vol-create "$gold" vm1 --image tiny
echo "user data" >"$dir/mine.qcow2"
expect_fail "$dir/mine.qcow2 exists already" ppfctl vol-create "$gold" mine.qcow2 --image tiny
[ ! -e "$PPF_POOL_DIR/$gold.volumes/mine.qcow2" ] || fail "a record was left for mine.qcow2"
[ "$(cat "$dir/mine.qcow2")" = "user data" ] || fail "vol-create touched an existing file"
expect_fail "not a volume name" ppfctl vol-create "$gold" web.raw --image tiny
expect_fail "needs --image" ppfctl vol-create "$gold" vm9
expect_fail "not a ppf pool" ppfctl vol-create ppftest-$$-nosuch vm1 --image tiny

# --- a domain with the volume as its disk and no ppf metadata ----------------------------
vol_domain vol vm1
start vol
qemu-img info -U --output=json "$dir/vm1" | grep -q '"format": "qcow2"' ||
    fail "the deployed vm1 is not a qcow2"
case $(backing "$dir/vm1") in
"$T/buffer/"*) ;;
*) fail "vm1 is not an overlay over the buffer's base: $(backing "$dir/vm1")" ;;
esac
qemu-img compare -q -U "$dir/vm1" "$T/tiny.raw" || fail "vm1's content is not the image's"
[ "$(disk_of vm1)" = deployed ] || fail "vol-list does not show vm1 as deployed"
pins=$(entry tiny pins)
[ "$pins" -ge 2 ] || fail "the running domain did not pin tiny (pins $pins)"
# reconnect (as libvirtd does after a restart): re-pins, never fails, prints nothing
ppf_virsh dumpxml "$domain" >"$T/live.xml"
env -i LC_ALL=C PATH="$PATH" PPF_HOOK_CACHE_DIR="$PPF_HOOK_CACHE_DIR" PPF_DEVICE="$PPF_DEVICE" PPF_POOL_DIR="$PPF_POOL_DIR" \
    "$top_builddir/ppf-qemu-hook" "$domain" reconnect begin - <"$T/live.xml" 2>"$T/err" ||
    fail "reconnect exited non-zero"
[ -s "$T/err" ] && { cat "$T/err"; fail "reconnect of a volume disk printed something"; }
# stop and start again: the same disk, not replaced
sum=$(md5sum <"$dir/vm1")
inode=$(ino "$dir/vm1")
destroy vol
[ "$(entry tiny pins)" -lt "$pins" ] || fail "destroy did not release the domain's pin"
start vol
[ "$(ino "$dir/vm1")" = "$inode" ] && [ "$(md5sum <"$dir/vm1")" = "$sum" ] ||
    fail "the second start replaced vm1"
destroy vol

# --- two volume disks in one domain; a copy-mode volume ---------------------------------
ppfctl vol-create "$gold" multi-a --image tiny >/dev/null 2>&1 || fail "vol-create multi-a"
ppfctl vol-create "$gold" multi-b --image tiny --mode copy >/dev/null 2>&1 ||
    fail "vol-create multi-b"
vol_domain multi multi-a multi-b:raw
start multi
[ -n "$(backing "$dir/multi-a")" ] || fail "multi-a is not an overlay"
[ -z "$(backing "$dir/multi-b")" ] && cmp -s "$dir/multi-b" "$T/tiny.raw" ||
    fail "multi-b is not a raw copy of the image"
destroy multi

# --- refused: the pool's prepared image as a disk; a driver type that does not match ------
ppfctl pool-refresh "$gold" >/dev/null || fail "pool-refresh"
ppf_virsh vol-list "$gold" | grep -q 'tiny\.raw' || fail "pool-refresh did not show the prepared tiny.raw"
vol_domain prep tiny.raw:raw
start_fails prep "ppf: domain $domain: volume tiny.raw in pool $gold is ppf's read-only prepared image; create a disk from it with: ppfctl vol-create $gold NAME --image tiny"
ppfctl vol-create "$gold" vm2 --image tiny >/dev/null 2>&1 || fail "vol-create vm2"
vol_domain nodrv vm2:none
start_fails nodrv "give disk vda <driver name='qemu' type='qcow2'/>"
[ ! -s "$dir/vm2" ] || fail "a refused start deployed vm2"

# --- the peripheral stopped: the host fallback deploys placeholders too -------------------
kill_pidfile "$tmpdir/ppf0.pid"
ppfctl vol-create "$gold" vm3 --image tiny >"$T/out" 2>"$T/err" ||
    { cat "$T/err"; fail "vol-create with the peripheral down"; }
grep -q "not asked to prefetch tiny" "$T/err" || { cat "$T/err"; fail "no note about the hint"; }
vol_domain fb vm3
start fb
case $(backing "$dir/vm3") in
"$T/buffer/hostfallback/"*) ;;
*) fail "vm3 is not an overlay over the host fallback's base: $(backing "$dir/vm3")" ;;
esac
qemu-img compare -q -U "$dir/vm3" "$T/tiny.raw" || fail "the fallback's vm3 is not the image"
# the deployed disks are kept by the fallback as well
sum=$(md5sum <"$dir/vm1")
start vol
[ "$(md5sum <"$dir/vm1")" = "$sum" ] || fail "the fallback replaced vm1"
destroy vol
destroy fb
write_policy fail
vol_domain fbfail vm2
start_fails fbfail "the peripheral is not running and deploy.fallback is fail"
[ -f "$dir/vm2" ] && [ ! -s "$dir/vm2" ] || fail "deploy.fallback: fail touched the placeholder"

# --- vol-list, vol-delete, pool-undefine ------------------------------------------------
ppfctl vol-list "$gold" >"$T/out" || fail "vol-list"
sed 's/^/# /' "$T/out"
ppfctl --json vol-list "$gold" | python3 -c '
import json,sys
v = {x["name"]: x for x in json.load(sys.stdin)["volumes"]}
assert sorted(v) == ["multi-a", "multi-b", "vm1", "vm2", "vm3"], sorted(v)
assert v["vm1"]["disk"] == "deployed" and v["vm2"]["disk"] == "placeholder", v
assert v["multi-b"]["mode"] == "copy" and v["vm1"]["image"] == "tiny", v' || fail "vol-list --json"
ppfctl vol-delete "$gold" vm1 >"$T/out" || fail "vol-delete vm1"
sed 's/^/# /' "$T/out"
[ ! -e "$dir/vm1" ] && [ ! -e "$PPF_POOL_DIR/$gold.volumes/vm1" ] || fail "vol-delete left vm1"
ppf_virsh vol-list "$gold" | grep -q "vm1 " && fail "libvirt still lists vm1"
ppfctl vol-delete "$gold" vm3 --keep-disk >/dev/null || fail "vol-delete --keep-disk"
[ -s "$dir/vm3" ] || fail "--keep-disk removed the disk"
expect_fail "has no volume vm1" ppfctl vol-delete "$gold" vm1
ppfctl pool-undefine "$gold" >"$T/out" || fail "pool-undefine"
sed 's/^/# /' "$T/out"
grep -q "3 volume records removed" "$T/out" || fail "pool-undefine did not remove the records"
[ ! -e "$PPF_POOL_DIR/$gold.volumes" ] || fail "the records' directory is still there"
[ -s "$dir/multi-a" ] || fail "pool-undefine removed a disk"
echo ok
