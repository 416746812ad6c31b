#!/usr/bin/env bash
# virsh start served by ppf on a real libvirtd (KVM, or TCG where /dev/kvm is
# missing): a domain with ppf metadata gets its disk from the peripheral's
# buffer through ppf-qemu-hook; a plain domain is untouched; bad metadata
# fails the start with the hook's one line; destroy releases the domain's
# pin; a restart keeps the existing disk.
. "${top_builddir:-..}/tests/functions.sh" || exit 99
. "$top_srcdir/tests/libvirt-functions.sh" || exit 99
requires_libvirt
requires qemu-img --version
requires_no_installed_hook
start_libvirt

T=$tmpdir
disks=/var/lib/libvirt/images/ppftest-$$
mkdir -p "$T/images" "$disks"
cleanup_fn "rm -rf '$disks'"
qemu-img create -f raw "$T/tiny.raw" 64M >/dev/null
printf 'ppf' | dd of="$T/tiny.raw" bs=1 seek=1048576 conv=notrunc status=none
ppf-image pack "$T/tiny.raw" "$T/images/tiny.ppfi" >/dev/null || fail "pack"
cat >"$T/policy.yaml" <<EOT
buffer:
  path: $T/buffer
stores:
  - {name: local, url: "file://$T/images"}
deploy:
  dirs: [$disks]
EOT
start_peripheral ppf0
ppfctl policy apply "$T/policy.yaml" >/dev/null || fail "policy apply"

install_test_hook

meta='<ppf:deploy xmlns:ppf="urn:ppf:libvirt:1.0" image="tiny"/>'
define_test_domain ppf "$disks/ppf.qcow2" "$meta"
ppfdom=$domain
t0=$(date +%s%N)
ppf_virsh start "$ppfdom" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "virsh start of a ppf domain"; }
echo "virsh start (ppf miss): $(( ($(date +%s%N) - t0) / 1000000 )) ms"
[ "$(domain_state ppf)" = running ] || fail "ppf domain not running"
qemu-img info -U --output=json "$disks/ppf.qcow2" | grep -q '"backing-filename"' ||
    fail "the disk is not an overlay over the buffer"
ppfctl --json buffer | python3 -c '
import json,sys; e=json.load(sys.stdin)["entries"]; assert e[0]["image"]=="tiny" and e[0]["pins"]==2, e' ||
    fail "no pinned entry for the running domain"

# a plain domain is not touched
make_test_disk "$disks/plain.qcow2" 64M
define_test_domain plain "$disks/plain.qcow2"
ppf_virsh start "$domain" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "plain domain did not start"; }

# bad metadata: the start fails with the hook's line
define_test_domain bad "$disks/bad.qcow2" '<ppf:deploy xmlns:ppf="urn:ppf:libvirt:1.0" image="../etc/passwd"/>'
ppf_virsh start "$domain" >/dev/null 2>"$T/err" && fail "a domain with bad ppf metadata started"
grep -q "ppf" "$T/err" || { cat "$T/err"; fail "virsh does not show the hook's message"; }
[ -e "$disks/bad.qcow2" ] && fail "a disk was created for bad metadata"

# destroy releases the domain's pin; the disk's reference stays
ppf_virsh destroy "$ppfdom" >/dev/null || fail "destroy"
ppfctl --json buffer | python3 -c '
import json,sys; e=json.load(sys.stdin)["entries"]; assert e[0]["pins"]==1, e' ||
    fail "destroy did not release the domain's pin"
# a restart keeps the existing disk
ppf_virsh start "$ppfdom" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "restart with the existing disk"; }
[ "$(domain_state ppf)" = running ] || fail "restarted ppf domain not running"
echo ok
