#!/usr/bin/env bash
# The libvirt test infrastructure works on this host: libvirtd answers (started with
# scripts/libvirt-up.sh if it was not running, and stopped again at exit if this test
# started it), a throw-away domain on an empty 64 MiB qcow2 (no OS: the guest sits in its
# firmware) defines, starts, runs, is destroyed and undefined, and the qemu hook directory
# exists or can be created (and is left in place, empty).  Everything else is cleaned up
# however the test ends.
. "${top_builddir:-..}/tests/functions.sh" || exit 99
. "$top_srcdir/tests/libvirt-functions.sh" || exit 99

requires_libvirt
t_all=$(date +%s%N)
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

start_libvirt
echo "libvirtd answering (started by this test: $libvirt_started)"

make_test_disk "$tmpdir/smoke.qcow2" 64M
define_test_domain smoke "$tmpdir/smoke.qcow2"
name=$domain
case $name in "ppftest-$$-smoke") ;; *) fail "unexpected domain name $name" ;; esac
[ "$(domain_state smoke)" = "shut off" ] || fail "defined domain is '$(domain_state smoke)', not 'shut off'"

t=$(date +%s%N)
ppf_virsh start "$name" >"$tmpdir/start.log" 2>&1 || { cat "$tmpdir/start.log" >&2; fail "virsh start $name failed"; }
echo "virsh start: $(ms_since "$t") ms"
[ "$(domain_state smoke)" = running ] || fail "started domain is '$(domain_state smoke)', not 'running'"
ppf_virsh dominfo "$name" | grep -q '^State:.*running' || fail "dominfo does not say running"

t=$(date +%s%N)
ppf_virsh destroy "$name" >"$tmpdir/destroy.log" 2>&1 || { cat "$tmpdir/destroy.log" >&2; fail "virsh destroy $name failed"; }
echo "virsh destroy: $(ms_since "$t") ms"
[ "$(domain_state smoke)" = "shut off" ] || fail "destroyed domain is '$(domain_state smoke)', not 'shut off'"

ppf_virsh undefine --nvram "$name" >/dev/null 2>&1 || fail "virsh undefine $name failed"
[ -z "$(domain_state smoke)" ] || fail "domain $name still exists after undefine"
ppf_virsh list --all --name | grep -qx "$name" && fail "domain $name still listed after undefine"

# The hook directory ppf's qemu hook will be installed into: there, or creatable.  One this
# test creates is left in place (empty: no hook is installed), since removing it would race
# with a parallel test checking it; libvirtd ignores an empty qemu.d.
hooks=/etc/libvirt/hooks
how=present
[ -d "$hooks/qemu.d" ] || how=created
mkdir -p "$hooks/qemu.d" || fail "cannot create $hooks/qemu.d"
if [ ! -d "$hooks/qemu.d" ] || [ ! -w "$hooks/qemu.d" ]; then
    fail "$hooks/qemu.d is not a writable directory"
fi
echo "hook directory $hooks/qemu.d: $how ($(find "$hooks/qemu.d" -mindepth 1 -maxdepth 1 | wc -l) entries)"

echo "ok ($(ms_since "$t_all") ms)"
