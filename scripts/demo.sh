#!/usr/bin/env bash
# The README's main-job command: installs what ppf needs (Debian 12, as
# root), builds and installs ppf (prefix /usr/local), starts the emulated
# peripheral if none is running, and shows it answering: the device status
# and 10,000 command round trips through libppf.  Later issues grow this into
# the full prefetch-then-`virsh start` run.
#
# Environment: PPF_SKIP_DEPS=1 skips the package install; PPF_PREFIX sets the
# install prefix (default /usr/local).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD
prefix=${PPF_PREFIX:-/usr/local}
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

cat <<EOT

ppf demo: done.  The emulated peripheral keeps running (pid $(cat "$pidfile")).
  status:   ppfctl status [--json]
  stop it:  kill \$(cat $pidfile)
  manuals:  man ppf-peripheral, man ppfctl
EOT
