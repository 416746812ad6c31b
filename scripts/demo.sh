#!/usr/bin/env bash
# The README's main-job command: installs what ppf needs (Debian 12, as
# root), builds and installs ppf (prefix /usr/local), starts the emulated
# peripheral and ppfd if they are not running, and runs the main job: the
# device answering, an image packed into a local store (/var/lib/ppf/images),
# the policy (/etc/ppf/policy.yaml, written if absent), a prefetch into the
# buffer and a deploy served from it, then scripts/demo-workload.sh: libvirtd,
# four ppf domains started in a recurring order while ppf learns it, and a
# report of every `virsh start` (/var/lib/ppf/demo/report.md, report.svg).
# Idempotent; leaves the stack running and says how to stop it.
#
# Environment: PPF_SKIP_DEPS=1 skips the package install; PPF_PREFIX sets the
# install prefix (default /usr/local); PPF_DEMO_SIZE_MIB the service images'
# size (default 192), PPF_DEMO_ROUNDS the workload's rounds (default 4).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD
prefix=${PPF_PREFIX:-/usr/local}
DEMO_SIZE_MIB=${PPF_DEMO_SIZE_MIB:-192}
say() { printf '\n==== ppf demo: %s ====\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "ppf demo: run as root (it installs packages and ppf itself): sudo bash $0" >&2
    exit 1
fi
if [ "${PPF_SKIP_DEPS:-0}" != 1 ]; then
    say "installing dependencies"
    bash scripts/install-deps.sh
fi

say "building ppf into $src/build-demo and installing under $prefix"
./autogen.sh >/dev/null
mkdir -p build-demo
(cd build-demo && "$src/configure" -q --prefix="$prefix" --sysconfdir=/etc --localstatedir=/var)
make -C build-demo -j"$(nproc)" >build-demo/make.log 2>&1 || { tail -40 build-demo/make.log; exit 1; }
make -C build-demo install >build-demo/install.log 2>&1 || { tail -40 build-demo/install.log; exit 1; }
ldconfig
export PATH=$prefix/sbin:$prefix/bin:$PATH

pidfile=/run/ppf/ppf-peripheral.pid
mkdir -p /run/ppf /var/lib/ppf
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "the emulated peripheral is already running (pid $(cat "$pidfile"))"
else
    say "starting the emulated peripheral (window /run/ppf/ppf0, state /var/lib/ppf)"
    ppf-peripheral --emulate --dev /run/ppf/ppf0 --state-dir /var/lib/ppf --pidfile "$pidfile"
fi

say "ppfctl status"
ppfctl status
say "ppfctl policy show (the policy in force, defaults filled in; first lines)"
ppfctl policy show | head -20
say "ppfctl nop --count 10000 (command round trips through the device window)"
ppfctl nop --count 10000

# --- the main job so far: an image store, the policy, ppfd, prefetch, deploy -------
store=/var/lib/ppf/images
disks=/var/lib/ppf/demo-disks
policy=/etc/ppf/policy.yaml
mkdir -p "$store" "$disks" /etc/ppf
if [ ! -s "$store/demo-disk.ppfi" ]; then
    say "packing an example image into the local store ($store/demo-disk.ppfi)"
    tmp=$(mktemp /var/tmp/ppf-demo.XXXXXX)
    truncate -s 512M "$tmp"
    head -c 32M /dev/urandom | dd of="$tmp" bs=1M seek=16 conv=notrunc status=none
    ppf-image pack "$tmp" "$store/demo-disk.ppfi"
    rm -f "$tmp"
fi
key=/etc/ppf/demo.key
if [ ! -s "$key" ]; then (umask 077; head -c 32 /dev/urandom >"$key"); fi
# (re)written while it is the demo's own; an admin's policy is never touched
if [ ! -s "$policy" ] || head -1 "$policy" | grep -q '^# written by scripts/demo.sh'; then
    say "writing a policy ($policy): local store, buffer in /var/lib/ppf/buffer, tenant demo"
    cat >"$policy" <<EOT
# written by scripts/demo.sh; every key: $src/examples/policy.yaml, ppf-policy(5)
monitoring:
  interval: 1s
learning:
  algorithm: ensemble
buffer:
  path: /var/lib/ppf/buffer
  capacity: 8GiB
stores:
  - name: local
    url: file://$store
tenants:
  demo:
    keyfile: $key
    quota: $((DEMO_SIZE_MIB * 5 / 2))MiB    # two of the four service images
deploy:
  dirs: [$disks, /var/lib/libvirt/images]
EOT
fi
ppfctl policy validate "$policy"
ppfd_pid=/run/ppf/ppfd.pid
if [ -s "$ppfd_pid" ] && kill -0 "$(cat "$ppfd_pid")" 2>/dev/null; then
    say "ppfd is already running: sending it SIGHUP to re-read $policy"
    kill -HUP "$(cat "$ppfd_pid")"
    sleep 1
else
    say "starting ppfd (applies $policy, samples host metrics into the device)"
    ppfd --policy "$policy" --pidfile "$ppfd_pid"
fi
for _ in $(seq 50); do ppfctl policy show 2>/dev/null | grep -q "file://$store" && break; sleep 0.1; done

say "ppfctl prefetch demo-disk --wait (fetch, decrypt, decompress, sparse fill, ahead of time)"
ppfctl prefetch demo-disk --wait
vm=$disks/vm-$(date +%s).qcow2
say "ppfctl deploy demo-disk --dest $vm (served from the buffer)"
ppfctl deploy demo-disk --dest "$vm"
qemu-img info "$vm" | sed -n '1,6p'
say "ppfctl buffer; ppfctl stats"
ppfctl buffer
ppfctl stats

bash scripts/demo-workload.sh --size "$DEMO_SIZE_MIB" ${PPF_DEMO_ROUNDS:+--rounds "$PPF_DEMO_ROUNDS"}

cat <<EOT

ppf demo: done.  Left running: ppf-peripheral (pid $(cat "$pidfile")) and ppfd (pid $(cat "$ppfd_pid")).
  status:   ppfctl status [--json];  ppfctl buffer;  ppfctl stats [--prometheus]
  deploy:   ppfctl deploy demo-disk --dest $disks/NAME.qcow2
  policy:   edit $policy, then: kill -HUP \$(cat $ppfd_pid)
  report:   /var/lib/ppf/demo/report.md, report.svg
  stop:     kill \$(cat $ppfd_pid) \$(cat $pidfile); bash $src/scripts/libvirt-down.sh
  manuals:  man ppf-peripheral ppfctl ppfd ppf-image ppf-policy
EOT
