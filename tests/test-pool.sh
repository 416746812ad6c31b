#!/usr/bin/env bash
# ppf pools on a real libvirtd (ppf-pool(5)): ppfctl pool-define validates a
# pool XML with ppf's element, defines and starts the plain libvirt dir pool
# and keeps ppf's part; pool-dumpxml gives both back; bad documents (schema,
# type, DOCTYPE, unknown store or tenant, open key file, what libvirt
# refuses) define nothing; a prefetched image appears as a volume after
# pool-refresh and goes after an evict; pool-undefine removes the pool and
# ppf's links but no other file.  Every pool is named ppftest-PID-* and is
# destroyed and undefined at exit however the test ends.
. "${top_builddir:-..}/tests/functions.sh" || exit 99
. "$top_srcdir/tests/libvirt-functions.sh" || exit 99
requires_libvirt
requires qemu-img --version
requires python3 --version
start_libvirt

T=$tmpdir
PPF_POOL_DIR=$T/pool-state
PPF_SCHEMA_DIR=$top_srcdir/schemas
export PPF_POOL_DIR PPF_SCHEMA_DIR
mkdir -p "$T/images" "$T/pools"

qemu-img create -f raw "$T/tiny.raw" 8M >/dev/null
ppf-image pack "$T/tiny.raw" "$T/images/tiny.ppfi" >/dev/null || fail "pack"
head -c 32 /dev/urandom >"$T/acme.key"
chmod 600 "$T/acme.key"
cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/buffer
stores:
  - {name: local, url: "file://$T/images"}
tenants:
  acme: {keyfile: $T/acme.key}
deploy:
  dirs: [$T/pools]
EOT
start_peripheral ppf0
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply"

# _cleanup_pool NAME: destroy and undefine a test pool, whatever state it is in.
_cleanup_pool() {
    ppf_virsh pool-destroy "$1" >/dev/null 2>&1
    ppf_virsh pool-undefine "$1" >/dev/null 2>&1
    :
}
# pool_xml NAME PPF-ATTRIBUTES [TYPE] [EXTRA]: a pool document on stdout.
pool_xml() {
    cat <<EOT
<pool type='${3:-dir}'>
  <name>$1</name>
  <ppf:pool xmlns:ppf="urn:ppf:libvirt:1.0" $2/>
  <target>
    <path>$T/pools/$1</path>
  </target>${4:+
  $4}
</pool>
EOT
}
# new_pool SHORT: sets $pool to a name unique to this run, cleaned up at exit.
new_pool() {
    pool=ppftest-$$-$1
    cleanup_fn "_cleanup_pool '$pool'"
}
# expect_fail FRAGMENT CMD...: CMD fails and says FRAGMENT on stderr.
expect_fail() {
    local frag=$1
    shift
    if "$@" >"$T/out" 2>"$T/err"; then
        cat "$T/out" "$T/err" >&2
        fail "succeeded: $*"
    fi
    # a sanitizer's report on a failing command fails the test as well
    cat "$T/err" >>"$T/ppfctl-errors.log"
    grep -qF -- "$frag" "$T/err" || { cat "$T/err" >&2; fail "no '$frag' in the error of: $*"; }
    sed 's/^/# /' "$T/err"
}
# not_defined NAME: neither libvirt nor ppf kept anything of NAME.
not_defined() {
    ppf_virsh pool-info "$1" >/dev/null 2>&1 && fail "libvirt has a pool $1 after a failure"
    [ ! -e "$PPF_POOL_DIR/$1.xml" ] || fail "ppf kept $PPF_POOL_DIR/$1.xml after a failure"
}

# --- documents that define nothing -------------------------------------------
new_pool bad
f=$T/bad.xml
pool_xml "$pool" 'store="local" colour="blue"' >"$f"
expect_fail "$f:3:" ppfctl pool-define "$f"
grep -q colour "$T/err" || fail "the bad attribute is not named"
not_defined "$pool"

pool_xml "$pool" 'store="local"' fs >"$f"
expect_fail "type 'dir'" ppfctl pool-define "$f"
not_defined "$pool"

{
    echo '<!DOCTYPE pool [ <!ENTITY x SYSTEM "file:///etc/passwd"> ]>'
    pool_xml "$pool" 'store="local" tenant="&x;"'
} >"$f"
expect_fail "$f:1:" ppfctl pool-define "$f"
grep -q DOCTYPE "$T/err" || fail "a DOCTYPE is not refused as such"
not_defined "$pool"

expect_fail "$T/missing.xml: No such file" ppfctl pool-define "$T/missing.xml"

pool_xml "$pool" 'store="nosuch"' >"$f"
expect_fail "no such store" ppfctl pool-define "$f"
grep -q "$f:3:" "$T/err" || fail "the unknown store's line is not named"
not_defined "$pool"

pool_xml "$pool" 'store="local" tenant="nobody"' >"$f"
expect_fail "no such tenant" ppfctl pool-define "$f"
not_defined "$pool"

cp "$T/acme.key" "$T/open.key"
chmod 644 "$T/open.key"
pool_xml "$pool" "store=\"local\" tenant=\"acme\" keyfile=\"$T/open.key\"" >"$f"
expect_fail "chmod 600" ppfctl pool-define "$f"
not_defined "$pool"

pool_xml "$pool" 'store="local"' dir '<other:x xmlns:other="urn:example:other"/>' >"$f"
expect_fail "urn:example:other" ppfctl pool-define "$f"
not_defined "$pool"

# libvirt's own schema refuses this one, after ppf's checks
pool_xml "$pool" 'store="local"' dir '<source><nonsense/></source>' >"$f"
expect_fail "libvirt refused the pool" ppfctl pool-define "$f"
not_defined "$pool"

# libvirt cannot build the directory: the defined pool is rolled back
sed "s#<path>.*</path>#<path>/proc/ppftest-$$</path>#" "$f" | grep -v nonsense >"$T/proc.xml"
expect_fail "nothing was defined" ppfctl pool-define "$T/proc.xml"
not_defined "$pool"

# --- a valid pool ---------------------------------------------------------------
new_pool gold
gold=$pool
f=$T/gold.xml
pool_xml "$gold" "store=\"local\" tenant=\"acme\" quota=\"1GiB\" keyfile=\"$T/acme.key\"" >"$f"
ppfctl pool-define "$f" >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err" >&2; fail "pool-define $f"; }
sed 's/^/# /' "$T/out" "$T/err"
ppf_virsh pool-info "$gold" >"$T/info" || fail "virsh pool-info $gold"
grep -Eq '^State: +running' "$T/info" || { cat "$T/info"; fail "$gold is not running"; }
grep -Eq '^Autostart: +yes' "$T/info" || { cat "$T/info"; fail "$gold does not autostart"; }
[ -d "$T/pools/$gold" ] || fail "the pool's directory was not built"
# libvirt kept no trace of ppf's element; ppf kept it
ppf_virsh pool-dumpxml "$gold" | grep -q 'urn:ppf' && fail "libvirt's pool XML carries ppf's element"
[ -s "$PPF_POOL_DIR/$gold.xml" ] || fail "no state file $PPF_POOL_DIR/$gold.xml"
ppfctl pool-dumpxml "$gold" >"$T/dump.xml" || fail "pool-dumpxml $gold"
python3 - "$T/dump.xml" "$gold" "$T/pools/$gold" "$T/acme.key" <<'EOT' ||
    { cat "$T/dump.xml"; fail "pool-dumpxml"; }
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{urn:ppf:libvirt:1.0}"
assert root.tag == "pool" and root.get("type") == "dir", root.tag
assert root.findtext("name") == sys.argv[2]
assert len(root.findtext("uuid")) == 36
assert root.find("target/path").text == sys.argv[3]
p = root.findall(ns + "pool")
assert len(p) == 1, p
a = p[0].attrib
assert a == {"store": "local", "tenant": "acme", "quota": "1GiB", "keyfile": sys.argv[4],
             "volumes": "prepared"}, a
EOT
expect_fail "exists already" ppfctl pool-define "$f"

# --- prepared images as volumes ---------------------------------------------------
echo "not ppf's" >"$T/pools/$gold/notes.txt"
ppfctl prefetch tiny --wait >/dev/null 2>&1 || fail "prefetch tiny --wait"
ppfctl pool-refresh "$gold" >"$T/out" || fail "pool-refresh $gold"
sed 's/^/# /' "$T/out"
ppf_virsh vol-list "$gold" >"$T/vols"
grep -q 'tiny\.raw' "$T/vols" || { cat "$T/vols"; fail "tiny.raw is not a volume of $gold"; }
ppf_virsh vol-info --pool "$gold" tiny.raw | grep -Eq 'Capacity: +8\.00 MiB' ||
    fail "the volume is not the 8 MiB prepared image"
# cheap and idempotent: nothing changes the second time
ppfctl --json pool-refresh "$gold" | python3 -c '
import json,sys; d=json.load(sys.stdin)
assert (d["prepared"], d["added"], d["removed"]) == (1, 0, 0), d' ||
    fail "a second pool-refresh changed something"
ppfctl --json pool-list | python3 -c '
import json,sys; p=[x for x in json.load(sys.stdin)["pools"] if x["name"]==sys.argv[1]][0]
assert p["state"] == "running" and p["prepared"] == 1 and p["disks"] == 1, p' "$gold" ||
    fail "pool-list"

ppfctl evict tiny >/dev/null || fail "evict tiny"
ppfctl pool-refresh >/dev/null || fail "pool-refresh (all pools)"
ppf_virsh vol-list "$gold" >"$T/vols"
grep -q 'tiny\.raw' "$T/vols" && { cat "$T/vols"; fail "tiny.raw is still listed after the evict"; }
grep -q 'notes\.txt' "$T/vols" || { cat "$T/vols"; fail "a file ppf did not make went away"; }

# --- ppfd keeps the volumes current by itself (every 5 s) --------------------------------
# (no policy file: ppfd keeps the peripheral's)
ppfd --policy "$T/no-policy.yaml" --device "$PPF_DEVICE" --pool-dir "$PPF_POOL_DIR" \
    --exit-with-parent --pidfile "$T/ppfd.pid" 2>>"$T/ppfd.log" &
ppfd_pid=$!
cleanup_fn "kill $ppfd_pid 2>/dev/null; wait $ppfd_pid 2>/dev/null"
ppfctl prefetch tiny --wait >/dev/null 2>&1 || fail "prefetch tiny --wait (again)"
for _ in $(seq 100); do
    ppf_virsh vol-list "$gold" 2>/dev/null | grep -q 'tiny\.raw' && break
    sleep 0.2
done
ppf_virsh vol-list "$gold" | grep -q 'tiny\.raw' ||
    { cat "$T/ppfd.log" >&2; fail "ppfd did not show the prefetched tiny as a volume within 20 s"; }
kill "$ppfd_pid"; wait "$ppfd_pid" || fail "ppfd did not stop cleanly"

# --- pool-dumpxml is pool-define input; pool-undefine -----------------------------------
ppfctl pool-refresh "$gold" >/dev/null || fail "pool-refresh $gold (again)"
ppfctl pool-undefine "$gold" >"$T/out" || fail "pool-undefine $gold"
sed 's/^/# /' "$T/out"
ppf_virsh pool-info "$gold" >/dev/null 2>&1 && fail "libvirt still has $gold"
[ ! -e "$PPF_POOL_DIR/$gold.xml" ] || fail "the state file of $gold is still there"
[ -e "$T/pools/$gold/tiny.raw" ] || [ -L "$T/pools/$gold/tiny.raw" ] &&
    fail "pool-undefine left ppf's link"
[ -s "$T/pools/$gold/notes.txt" ] || fail "pool-undefine removed a file ppf did not make"
ppfctl pool-define --policy "$T/policy.yaml" "$T/dump.xml" >/dev/null 2>"$T/err" ||
    { cat "$T/err"; fail "pool-define of pool-dumpxml's output"; }
uuid=$(python3 -c 'import sys, xml.etree.ElementTree as ET
print(ET.parse(sys.argv[1]).getroot().findtext("uuid"))' "$T/dump.xml")
[ "$(ppf_virsh pool-uuid "$gold")" = "$uuid" ] || fail "the redefined pool has another uuid"
ppfctl pool-undefine "$gold" >/dev/null || fail "pool-undefine $gold (again)"
expect_fail "not a ppf pool" ppfctl pool-undefine "$gold"
echo ok
