# shellcheck shell=bash disable=SC2154,SC2034
# Shared helpers for ppf's tests against a real libvirtd (sourced after tests/functions.sh,
# whose requires, fail, cleanup_fn and $tmpdir they use).  requires_libvirt skips (77)
# where libvirt cannot run; start_libvirt brings libvirtd up with scripts/libvirt-up.sh if
# qemu:///system is not answering and holds it until the test exits; make_test_disk,
# define_test_domain and domain_state make and inspect throw-away domains, each undefined
# at exit however the test ends.  Domain names are "ppftest-<test PID>-NAME", so tests
# running in parallel never collide.  bench/bench-virsh-start sources this too (with its
# own minimal cleanup_fn/fail/tmpdir), so the benchmark's floor uses the same domain.

LIBVIRT_URI=qemu:///system

# ppf_virsh ARGS...: virsh on the system URI, never the caller's LIBVIRT_DEFAULT_URI.
ppf_virsh() {
    virsh -q -c "$LIBVIRT_URI" "$@"
}

# kvm_usable: 0 if /dev/kvm can be opened read-write (then domains use type kvm).
kvm_usable() {
    [ -c /dev/kvm ] && (exec 3<>/dev/kvm) 2>/dev/null
}

# Skips (77) when an installed ppf hook (make install) would serve the
# test's domains with the system's peripheral before the test's own runs.
requires_no_installed_hook() {
    local h
    for h in /etc/libvirt/hooks/qemu /etc/libvirt/hooks/qemu.d/*; do
        [ -e "$h" ] && [ "$(basename "$(readlink -f "$h")")" = ppf-qemu-hook ] &&
            { echo "$0: skipped: $h is an installed ppf hook; remove it to run this test"; exit 77; }
    done
    return 0
}

# Makes libvirtd rescan its hooks.
reload_hooks() { kill -HUP "$(pgrep -x libvirtd | head -1)" 2>/dev/null; sleep 1; }

# The tests' hooks.  libvirtd runs every script in qemu.d at each step of every start,
# listing the directory each time, so a test that removed its own hook script while a
# parallel test's domain was starting could make that start fail (the script gone
# between libvirt's exec and the shell's open).  So one dispatcher stays in qemu.d for
# as long as libvirtd runs (scripts/libvirt-down.sh removes it when it stops libvirtd
# and no test's hook is left);
# it reads the body of test PID's hook from /run/ppf/test-hooks/PID for the domains
# ppftest-PID-* and does nothing for any other domain, or when the body is gone.
PPF_TEST_DISPATCH=/etc/libvirt/hooks/qemu.d/ppftest-dispatch
PPF_TEST_HOOKS=/run/ppf/test-hooks

_install_dispatch() {
    local tmp=/etc/libvirt/hooks/.ppftest-dispatch.$$
    [ -x "$PPF_TEST_DISPATCH" ] && return 0
    mkdir -p /etc/libvirt/hooks/qemu.d
    cat >"$tmp" <<'EOT'
#!/bin/sh
# ppf's tests (tests/libvirt-functions.sh): the hook of test PID for its domains ppftest-PID-*
case $1 in ppftest-[0-9]*-*) ;; *) exit 0 ;; esac
pid=${1#ppftest-}; pid=${pid%%-*}
body=$(cat "/run/ppf/test-hooks/$pid" 2>/dev/null) || exit 0
eval "$body"
EOT
    chmod 755 "$tmp"
    mv -f "$tmp" "$PPF_TEST_DISPATCH"   # same file system: atomic
    reload_hooks
}

# install_test_hook [VAR=VALUE...]: this test's hook (see above): the built
# ppf-qemu-hook for this test's domains only (ppftest-PID-*: parallel tests have their
# own peripherals), with PPF_DEVICE, PPF_POLICY=$T/policy.yaml, the fallback worker,
# the test's parse cache and the VAR=VALUE given; each call is logged with its status
# and stderr to $T/hook-calls.log.  Removed at exit.  Sets $hook (the body's file).
install_test_hook() {
    local env="" kv
    for kv in "$@"; do env="$env ${kv%%=*}='${kv#*=}'"; done
    _install_dispatch
    mkdir -p "$PPF_TEST_HOOKS"
    hook=$PPF_TEST_HOOKS/$$
    cat >"$hook.tmp" <<EOT
err='$T'/hook-err.\$\$
PPF_DEVICE='$PPF_DEVICE' PPF_POLICY='$T/policy.yaml'$env \\
PPF_HOOK_CACHE_DIR='$PPF_HOOK_CACHE_DIR' \\
PPF_HOOK_FALLBACK='$top_builddir/ppf-qemu-hook-fallback' \\
    '$top_builddir/ppf-qemu-hook' "\$@" 2>"\$err"
rc=\$?
cat "\$err" >&2
echo "\$1 \$2 \$3 rc=\$rc \$(tr '\n' ' ' <"\$err")" >>'$T/hook-calls.log'
rm -f "\$err"
exit \$rc
EOT
    mv -f "$hook.tmp" "$hook"
    cleanup_fn "rm -f '$hook'"
}

# requires_libvirt: skips the test unless it can run domains on a real libvirtd here.
requires_libvirt() {
    if [ "$(id -u)" != 0 ]; then
        echo "$0: skipped: requires root (libvirtd, qemu:///system)"
        exit 77
    fi
    export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
    if [ ! -e /dev/kvm ] && ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
        echo "$0: skipped: requires /dev/kvm or qemu-system-x86_64"
        exit 77
    fi
    requires command -v libvirtd
    requires command -v virtlogd
    requires command -v virsh
    requires command -v qemu-img
}

# start_libvirt: makes sure libvirtd answers on qemu:///system.  If it does not, starts it
# with scripts/libvirt-up.sh (libvirtd under ppf-reaper, plus virtlogd) and stops it at exit
# with scripts/libvirt-down.sh.  If a libvirt-up stack is already running, this test joins
# it as a holder, so that a parallel test that started it does not stop it under us (the
# last holder out stops it).  A libvirtd started some other way is used and never stopped.
# Sets $libvirt_started=1 if this test started it.
start_libvirt() {
    local up="$top_srcdir/scripts/libvirt-up.sh" down="$top_srcdir/scripts/libvirt-down.sh"
    libvirt_started=0
    if ppf_virsh version >/dev/null 2>&1 && ! _libvirt_up_running; then
        return 0
    fi
    if [ -z "${PPF_REAPER:-}" ] && [ -x "$top_builddir/ppf-reaper" ]; then
        PPF_REAPER=$top_builddir/ppf-reaper
        export PPF_REAPER
    fi
    # Registered first, so it runs after the domain cleanups registered later.
    cleanup_fn "bash '$down' --release $$ >>'$tmpdir/libvirt-down.log' 2>&1"
    bash "$up" --hold $$ >"$tmpdir/libvirt-up.log" 2>&1 || {
        cat "$tmpdir/libvirt-up.log" >&2
        fail "scripts/libvirt-up.sh failed"
    }
    grep -q "started libvirtd" "$tmpdir/libvirt-up.log" && libvirt_started=1
    sed 's/^/# /' "$tmpdir/libvirt-up.log"
    ppf_virsh version >/dev/null 2>&1 || fail "libvirtd does not answer on $LIBVIRT_URI"
}

# _libvirt_up_running: 0 if the running libvirtd is the one libvirt-up.sh started.
_libvirt_up_running() {
    local f pid
    for f in /run/ppf/libvirtd-reaper.pid /run/ppf/libvirtd.pid; do
        [ -s "$f" ] || continue
        pid=$(tr -dc 0-9 <"$f")
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && return 0
    done
    return 1
}

# make_test_disk PATH SIZE: an empty qcow2 image (no OS: the guest sits in firmware).
make_test_disk() {
    qemu-img create -q -f qcow2 "$1" "$2" >/dev/null ||
        fail "qemu-img create $1 $2 failed"
}

# test_domain_name NAME: the name define_test_domain gives NAME in this test.
test_domain_name() {
    case $1 in
    ppftest-*) echo "$1" ;;
    *) echo "ppftest-$$-$1" ;;
    esac
}

# test_domain_xml NAME DISK [METADATA_XML]: prints the domain XML (used by
# define_test_domain; the benchmark uses it directly).  64 MiB, 1 vCPU, q35, kvm with
# host-passthrough if /dev/kvm is usable else TCG, one virtio qcow2 disk, no network, no
# graphics, serial console to $tmpdir/NAME.serial.
test_domain_xml() {
    local name=$1 disk=$2 meta=${3:-} type=qemu cpu=""
    if kvm_usable; then
        type=kvm
        cpu="  <cpu mode='host-passthrough'/>"
    fi
    cat <<EOF
<domain type='$type'>
  <name>$name</name>
  <metadata>${meta:+
    $meta
  }</metadata>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/></features>
$cpu
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64 || echo /usr/bin/qemu-system-x86_64)</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='$tmpdir/$name.serial'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# define_test_domain NAME DISK [METADATA_XML]: defines a throw-away domain named
# $(test_domain_name NAME) (set in $domain), destroyed and undefined at exit.
define_test_domain() {
    local name disk=$2 meta=${3:-}
    name=$(test_domain_name "$1")
    test_domain_xml "$name" "$disk" "$meta" >"$tmpdir/$name.xml"
    cleanup_fn "_cleanup_test_domain '$name'"
    ppf_virsh define "$tmpdir/$name.xml" >"$tmpdir/$name.define.log" 2>&1 || {
        cat "$tmpdir/$name.define.log" >&2
        fail "virsh define $name failed"
    }
    domain=$name
}

# _cleanup_test_domain NAME: destroy and undefine, then remove libvirt's QEMU log of the
# domain (printing its tail first if the test is failing: $status of _run_cleanup).
_cleanup_test_domain() {
    local log="/var/log/libvirt/qemu/$1.log"
    ppf_virsh destroy "$1" >/dev/null 2>&1
    ppf_virsh undefine --nvram "$1" >/dev/null 2>&1
    if [ "${status:-0}" != 0 ] && [ -s "$log" ]; then
        echo "--- tail of $log:" >&2
        tail -n 15 "$log" >&2
    fi
    rm -f "$log"
}

# domain_state NAME: "running", "shut off", … (empty if there is no such domain).
domain_state() {
    ppf_virsh domstate "$(test_domain_name "$1")" 2>/dev/null | sed -n '1{s/[[:space:]]*$//;p}'
}
