#!/usr/bin/env bash
# ppf-qemu-hook as libvirt runs it (NAME OP SUBOP EXTRA, domain XML on
# stdin), against a real peripheral and real files, no libvirtd: prepare
# creates the disk, a second prepare keeps it, release unpins, a domain
# without ppf metadata is untouched, bad metadata fails with one line, and
# with the peripheral stopped the host fallback deploys (or fails, as the
# policy says).
. "${top_builddir:-..}/tests/functions.sh" || exit 99
requires qemu-img --version
requires python3 --version

T=$tmpdir
mkdir -p "$T/images" "$T/disks"
head -c 32 /dev/urandom >"$T/acme.key"; chmod 600 "$T/acme.key"
mkimg() {   # mkimg NAME SIZE_MiB [--key F]
    local name=$1 mib=$2; shift 2
    truncate -s "${mib}M" "$T/$name.raw"
    dd if=/dev/urandom of="$T/$name.raw" bs=1M count=2 seek=1 conv=notrunc status=none
    ppf-image pack "$@" "$T/$name.raw" "$T/images/$name.ppfi" >/dev/null || fail "pack $name"
}
mkimg pub 32
mkimg secret 16 --key "$T/acme.key"
policy() {  # policy FALLBACK
    cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/buffer
  capacity: 1GiB
stores:
  - name: local
    url: file://$T/images
tenants:
  acme:
    keyfile: $T/acme.key
deploy:
  dirs: [$T/disks]
  fallback: $1
EOT
}
policy host
export PPF_POLICY=$T/policy.yaml
start_peripheral ppf0
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply"

# mkdom NAME UUID DISK [METADATA]: a domain XML as libvirt writes it
mkdom() {
    cat <<EOT
<domain type='kvm'>
  <name>$1</name>
  <uuid>$2</uuid>
  <memory unit='KiB'>65536</memory>
${4:+  <metadata>
    $4
  </metadata>}
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$3'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
EOT
}
hook() {    # hook NAME OP XML-FILE: runs the hook as libvirt would
    env -i LC_ALL=C PATH="$PATH" PPF_HOOK_CACHE_DIR="$PPF_HOOK_CACHE_DIR" HOME="${HOME:-/}" PPF_DEVICE="$PPF_DEVICE" \
        PPF_POLICY="$PPF_POLICY" PPF_HOOK_FALLBACK="$top_builddir/ppf-qemu-hook-fallback" \
        ppf-qemu-hook "$1" "$2" begin - <"$3"
}
pins() {    # pins IMAGE: the image's pins in the buffer
    ppfctl buffer --json | python3 -c '
import json,sys; d=json.load(sys.stdin)
print(sum(e["pins"] for e in d["entries"] if e["image"] == sys.argv[1]))' "$1"
}
one_line() {    # one_line FILE PATTERN: exactly one line, matching
    [ "$(wc -l <"$1")" = 1 ] || fail "expected one line on stderr, got: $(cat "$1")"
    grep -q "$2" "$1" || fail "stderr lacks '$2': $(cat "$1")"
}
NS='xmlns:ppf="urn:ppf:libvirt:1.0"'
U1=11111111-2222-3333-4444-000000000001
U2=11111111-2222-3333-4444-000000000002

# prepare: the disk appears, a valid overlay with the image's content
mkdom vm1 $U1 "$T/disks/vm1.qcow2" "<ppf:deploy $NS image=\"pub\"/>" >"$T/vm1.xml"
hook vm1 prepare "$T/vm1.xml" 2>"$T/err" || fail "prepare vm1: $(cat "$T/err")"
[ -s "$T/err" ] && fail "prepare printed on success: $(cat "$T/err")"
qemu-img check "$T/disks/vm1.qcow2" >/dev/null || fail "qemu-img check vm1"
qemu-img compare "$T/disks/vm1.qcow2" "$T/pub.raw" >/dev/null || fail "vm1 content differs"
p1=$(pins pub)
[ "$p1" -ge 1 ] || fail "no pin after prepare ($p1)"

# restart of a persistent domain: the disk exists, is kept, start goes on
echo "guest data" | dd of="$T/disks/vm1.qcow2" bs=1 seek=1000000 conv=notrunc status=none
sum=$(md5sum <"$T/disks/vm1.qcow2")
hook vm1 prepare "$T/vm1.xml" 2>"$T/err" || fail "second prepare of vm1: $(cat "$T/err")"
[ "$(md5sum <"$T/disks/vm1.qcow2")" = "$sum" ] || fail "second prepare touched the disk"

# release unpins; twice is fine; never fails
hook vm1 release "$T/vm1.xml" 2>"$T/err" || fail "release vm1: $(cat "$T/err")"
p2=$(pins pub)
[ "$p2" -lt "$p1" ] || fail "release left the pins at $p2 (was $p1)"
hook vm1 release "$T/vm1.xml" || fail "second release"

# ephemeral, copy mode, encrypted image of a tenant with a key
mkdom vm2 $U2 "$T/disks/vm2.raw" \
    "<ppf:deploy $NS image=\"secret\" tenant=\"acme\" mode=\"copy\" ephemeral=\"yes\"/>" >"$T/vm2.xml"
hook vm2 prepare "$T/vm2.xml" 2>"$T/err" || fail "prepare vm2: $(cat "$T/err")"
cmp "$T/disks/vm2.raw" "$T/secret.raw" || fail "vm2 copy differs"
hook vm2 release "$T/vm2.xml" || fail "release vm2"

# a domain without ppf metadata: exit 0, nothing touched; other ops too
mkdom plain 11111111-2222-3333-4444-000000000003 "$T/disks/plain.qcow2" >"$T/plain.xml"
before=$(ls -la "$T/disks")
for op in prepare release start started stopped reconnect migrate; do
    hook plain $op "$T/plain.xml" 2>"$T/err" || fail "plain domain, $op: exit $?"
    [ -s "$T/err" ] && fail "plain domain, $op printed: $(cat "$T/err")"
done
ppf-qemu-hook vm1 started begin - </dev/null || fail "started with vm1"
[ "$(ls -la "$T/disks")" = "$before" ] || fail "a plain domain changed the disks"
n=200
t0=$(date +%s%N)
for _ in $(seq $n); do ppf-qemu-hook plain prepare begin - <"$T/plain.xml"; done
us=$(( ($(date +%s%N) - t0) / 1000 / n ))
echo "no-metadata prepare: $us us per run (fork+exec included, $n runs)"

# bad metadata: exit 1, one line naming the domain
for bad in 'image="../pub"' 'image="pub" mode="foo"' 'image="pub" ephemeral="maybe"' \
           'image="nosuch"' 'image="pub" tenant="nobody"'; do
    mkdom bad 11111111-2222-3333-4444-000000000004 "$T/disks/bad.qcow2" \
        "<ppf:deploy $NS $bad/>" >"$T/bad.xml"
    hook bad prepare "$T/bad.xml" 2>"$T/err" && fail "bad metadata ($bad) accepted"
    one_line "$T/err" "^ppf: domain bad: "
    [ -e "$T/disks/bad.qcow2" ] && fail "bad metadata ($bad) created a disk"
    hook bad release "$T/bad.xml" 2>/dev/null || fail "release failed for bad metadata ($bad)"
done
# a disk outside deploy.dirs
mkdom out 11111111-2222-3333-4444-000000000005 "$T/elsewhere.qcow2" \
    "<ppf:deploy $NS image=\"pub\"/>" >"$T/out.xml"
hook out prepare "$T/out.xml" 2>"$T/err" && fail "deployed outside deploy.dirs"
one_line "$T/err" "^ppf: domain out: disk $T/elsewhere.qcow2: "
# oversized stdin
head -c $((4 * 1024 * 1024 + 1)) /dev/zero >"$T/huge.xml"
hook huge prepare "$T/huge.xml" 2>"$T/err" && fail "accepted more than 4 MiB"
one_line "$T/err" "larger than"

# the peripheral stopped: the host fallback deploys with image/
kill_pidfile "$tmpdir/ppf0.pid"
mkdom vm3 11111111-2222-3333-4444-000000000006 "$T/disks/vm3.qcow2" \
    "<ppf:deploy $NS image=\"pub\"/>" >"$T/vm3.xml"
hook vm3 prepare "$T/vm3.xml" 2>"$T/err" || fail "fallback prepare: $(cat "$T/err")"
qemu-img check "$T/disks/vm3.qcow2" >/dev/null || fail "qemu-img check of the fallback disk"
qemu-img compare "$T/disks/vm3.qcow2" "$T/pub.raw" >/dev/null || fail "fallback content differs"
[ -f "$T/buffer/hostfallback/default/pub.raw" ] || fail "no host fallback base"
mkdom vm4 11111111-2222-3333-4444-000000000007 "$T/disks/vm4.raw" \
    "<ppf:deploy $NS image=\"secret\" tenant=\"acme\" mode=\"copy\"/>" >"$T/vm4.xml"
hook vm4 prepare "$T/vm4.xml" 2>"$T/err" || fail "fallback copy: $(cat "$T/err")"
cmp "$T/disks/vm4.raw" "$T/secret.raw" || fail "fallback copy differs"
sum=$(md5sum <"$T/disks/vm3.qcow2")
hook vm3 prepare "$T/vm3.xml" 2>"$T/err" || fail "fallback prepare, existing disk: $(cat "$T/err")"
[ "$(md5sum <"$T/disks/vm3.qcow2")" = "$sum" ] || fail "fallback touched an existing disk"
hook vm3 release "$T/vm3.xml" 2>"$T/err" || fail "release with the peripheral down failed"
# a tampered cached base is unpacked again
echo x >"$T/buffer/hostfallback/default/pub.raw.digest"
rm "$T/disks/vm3.qcow2"
hook vm3 prepare "$T/vm3.xml" 2>"$T/err" || fail "fallback after a bad digest: $(cat "$T/err")"
qemu-img compare "$T/disks/vm3.qcow2" "$T/pub.raw" >/dev/null || fail "refreshed base differs"

# the fallback program missing: one clear line
PPF_HOOK_FALLBACK=$T/nonexistent env -i LC_ALL=C PATH="$PATH" PPF_HOOK_CACHE_DIR="$PPF_HOOK_CACHE_DIR" PPF_DEVICE="$PPF_DEVICE" \
    PPF_POLICY="$PPF_POLICY" PPF_HOOK_FALLBACK=$T/nonexistent \
    ppf-qemu-hook vm5 prepare begin - <"$T/vm3.xml" 2>"$T/err" && fail "ran a missing fallback"
one_line "$T/err" "cannot be run"

# deploy.fallback: fail
policy fail
mkdom vm5 11111111-2222-3333-4444-000000000008 "$T/disks/vm5.qcow2" \
    "<ppf:deploy $NS image=\"pub\"/>" >"$T/vm5.xml"
hook vm5 prepare "$T/vm5.xml" 2>"$T/err" && fail "fallback fail deployed"
one_line "$T/err" "the peripheral is not running and deploy.fallback is fail"
[ -e "$T/disks/vm5.qcow2" ] && fail "fallback fail created a disk"
exit 0
